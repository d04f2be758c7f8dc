/** A bar chart drawn as SVG with attributes and classes only (no inline styles: strict CSP). */
export interface Bar {
  readonly label: string;
  readonly value: number;
}

export function BarChart(props: { bars: readonly Bar[]; title: string; unit?: string; className?: string }) {
  const W = 640;
  const H = 240;
  const pad = { l: 48, r: 12, t: 12, b: 48 };
  const max = Math.max(1, ...props.bars.map((b) => b.value));
  const n = Math.max(1, props.bars.length);
  const slot = (W - pad.l - pad.r) / n;
  const bw = Math.min(64, Math.max(2, slot * 0.75));
  const ih = H - pad.t - pad.b;
  return (
    <svg
      className={`chart ${props.className ?? ''}`}
      viewBox={`0 0 ${W} ${H}`}
      role="img"
      aria-label={props.title}
      preserveAspectRatio="xMidYMid meet"
    >
      <title>{props.title}</title>
      <line className="chart-axis" x1={pad.l} y1={pad.t + ih} x2={W - pad.r} y2={pad.t + ih} />
      <line className="chart-axis" x1={pad.l} y1={pad.t} x2={pad.l} y2={pad.t + ih} />
      <text className="chart-tick" x={pad.l - 6} y={pad.t + 10} textAnchor="end">
        {String(max)}
      </text>
      <text className="chart-tick" x={pad.l - 6} y={pad.t + ih} textAnchor="end">
        {'0'}
      </text>
      {props.bars.map((b, i) => {
        const h = (b.value / max) * ih;
        const x = pad.l + i * slot + (slot - bw) / 2;
        const y = pad.t + ih - h;
        return (
          <g key={`${b.label}-${i}`}>
            <rect className="chart-bar" x={x} y={y} width={bw} height={h}>
              <title>{`${b.label}: ${b.value}${props.unit ?? ''}`}</title>
            </rect>
            {b.value > 0 ? (
              <text className="chart-value" x={x + bw / 2} y={y - 3} textAnchor="middle">
                {String(b.value)}
              </text>
            ) : null}
            {n <= 16 || i % Math.ceil(n / 16) === 0 ? (
              <text className="chart-label" x={x + bw / 2} y={pad.t + ih + 16} textAnchor="middle">
                {b.label}
              </text>
            ) : null}
          </g>
        );
      })}
    </svg>
  );
}
