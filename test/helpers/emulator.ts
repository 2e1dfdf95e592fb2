// Starts an emulator instance on a free loopback port for one test file, closed at teardown.
import type { Test } from 'tap'
import { startEmulators, type Emulator, type EmulatorOptions } from '../../emulators/server.ts'

export async function startTestEmulator (t: Test, options: EmulatorOptions = {}): Promise<Emulator> {
  const emulator = await startEmulators({ port: 0, tokenLifetimeSeconds: 3600, ...options })
  t.teardown(emulator.close)
  return emulator
}
