// Environment for child processes a test spawns (the service, the emulators' CLI): only what they need.
// tap instruments spawned children for coverage; children that run through the tsx loader report
// unusable coverage (every file at 100%), which would hide real gaps, so their coverage is switched off.
export function childEnv (extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS ?? '',
    _TAPJS_PROCESSINFO_COVERAGE_: '0',
    ...extra
  }
}
