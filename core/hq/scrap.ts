/**
 * The scrap event: a station's signed request (JWS typ line-station-scrap+jws, x5c = station chain) that
 * headquarters revoke the certificate of a board scrapped after provisioning (docs/lifecycle.md "Scrap"). The
 * station signs it (station/lifecycle), the registry verifies it (registry/lifecycle); both use this schema.
 */
import { z } from 'zod';

export const SCRAP_TYP = 'line-station-scrap+jws';
export const SCRAP_SCHEMA = 'line-station/scrap/v1';

export const ScrapIdent = z.string().regex(/^[A-Za-z0-9._:@-]{1,128}$/);
export const ScrapPayloadSchema = z
  .object({
    schema: z.literal(SCRAP_SCHEMA),
    requestId: ScrapIdent,
    stationId: ScrapIdent,
    chipId: ScrapIdent,
    serialNumber: ScrapIdent,
    recordId: ScrapIdent,
    certificateSerial: z.string().regex(/^[0-9A-Fa-f]{1,64}$/),
    certificateSha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .nullable(),
    reason: z.literal('cessationOfOperation'),
    note: z.string().max(1024),
    supervisor: z.string().min(1).max(128),
    operator: z.string().min(1).max(128),
    scrappedAt: z.iso.datetime(),
  })
  .strict();
export type ScrapPayload = z.infer<typeof ScrapPayloadSchema>;
