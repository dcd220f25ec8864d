// Removes dist/ before a build (zero dependencies, works on every OS).
import { rmSync } from 'node:fs';
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
