// The package's own folders, for the CLI (they live in src/paths.ts, beside the library that needs them too).
export { defaultModelsDir, packageRoot, packageVersion } from '../paths.js';
