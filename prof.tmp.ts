import 'reflect-metadata';
import { benchIngest } from './testkit/bench/registry.js';
const r = await benchIngest({ backend: 'sqlite', stations: 1, records: 1500 });
console.log(r.stations, r.recordsPerSecond.toFixed(0), r.seconds.toFixed(1));
process.exit(0);
