// Types for torch-build.mjs (plain ESM so that npm's postinstall runs it before anything is installed).
export declare const TORCH_INDEX: string;
export declare const MIN_DRIVER: Record<11 | 12 | 13, { linux: string; win32: string }>;
export interface TorchBuild {
  variant: 'default' | 'cpu' | 'cu130' | 'cu128';
  /** null: PyPI's default build. */
  indexUrl: string | null;
  reason: string;
}
export interface Machine {
  platform: string;
  arch: string;
  /** NVIDIA driver version, or null without one. */
  driver: string | null;
}
export declare function compareVersions(a: string, b: string): -1 | 0 | 1;
export declare function cudaMajorForDriver(driver: string, platform: string): 13 | 12 | 11 | null;
export declare function chooseTorchBuild(machine: Machine): TorchBuild;
export declare function torchInstallArgs(build: TorchBuild): string[];
export declare function torchMismatches(
  machine: Machine & { torchCuda: string | null; python: string },
): { problem: string; fix: string }[];
export declare function probeDriver(): string | null;
