// Runs once before the test files (tap `before`): creates the emulators' CA so that every test process,
// started with NODE_EXTRA_CA_CERTS pointing at it, trusts the emulators' HTTPS origin from its first line.
import { ensurePki } from '../emulators/pki.ts'

await ensurePki()
