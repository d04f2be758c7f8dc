/** Test support: enrol operators in a test station's database (as `station operator add` would). */
import { join } from 'node:path';
import { must } from '../testkit/pki/test-util.js';
import type { OperatorRole } from '../native/store/operators.js';
import { openStationDb } from '../native/store/index.js';
import { hashBadge, hashPin, loadBadgeKey } from '../station/service/index.js';

export interface TestOperator {
  readonly id: string;
  readonly role: OperatorRole;
  readonly pin: string;
  readonly name?: string;
  readonly badge?: string;
}

/** Insert or replace operators in `<dataDir>/station.db` (PIN scrypt-hashed, badge keyed with the station key). */
export async function addOperators(dataDir: string, ops: readonly TestOperator[]): Promise<void> {
  const db = must(openStationDb(join(dataDir, 'station.db')));
  try {
    const key = must(loadBadgeKey(dataDir));
    for (const op of ops)
      db.operators.upsert(
        {
          operatorId: op.id,
          name: op.name ?? op.id,
          role: op.role,
          pinHash: await hashPin(op.pin),
          badgeHash: op.badge ? hashBadge(key, op.badge) : null,
        },
        new Date().toISOString(),
      );
  } finally {
    db.close();
  }
}
