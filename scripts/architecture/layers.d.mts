// Types for layers.mjs (the import layers, shared by eslint.config.js and test/architecture/).

/** One zone: files under `zone` may import the path prefixes in `may`. */
export interface Layer {
  readonly zone: string;
  readonly may: readonly string[];
  readonly why: string;
}
/** Every folder that holds our code. */
export declare const CODE_FOLDERS: readonly string[];
/** The zones, most specific first. */
export declare const LAYERS: readonly Layer[];
/** True for a test file. */
export declare function isTestFile(file: string): boolean;
/** The zone of a repository-relative path. */
export declare function zoneOf(file: string): Layer | undefined;
/** Why `from` may not import `to`, or undefined when it may. */
export declare function layerViolation(from: string, to: string): string | undefined;
