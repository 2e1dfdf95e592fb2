// Where scripts/test-setup.ts bundles src/server.ts before the tests run: the tests that start the service
// as a process run this file with plain `node`. Two levels below the repository, like src/http/openapi.ts,
// so the one path the sources take relative to themselves (../../package.json) still names the repository's.
export const SERVER_BUNDLE = new URL('../../.data/test-build/server.mjs', import.meta.url).pathname
