import t from 'tap'
import { ConfigError, isLocalMode, loadConfig } from '../../src/config.ts'

t.test('defaults give a runnable local-mode configuration', async t => {
  const config = loadConfig({})
  t.equal(config.PORT, 3000)
  t.equal(config.HOST, '127.0.0.1')
  t.equal(config.LOG_LEVEL, 'info')
  t.ok(isLocalMode(config))
})

t.test('numbers are read from strings and unrelated variables are ignored', async t => {
  const config = loadConfig({ PORT: '8080', PATH: '/usr/bin', ENTRA_TENANT_ID: '8f2c5a1e-4b7d-4e3a-9c61-2d5e8f0a7b13' })
  t.equal(config.PORT, 8080)
  t.notOk(isLocalMode(config))
  t.notOk('PATH' in config)
})

t.test('every bad variable is named in one error', async t => {
  const err = t.throws(() => loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud', ENTRA_TENANT_ID: 'contoso' })) as ConfigError
  t.type(err, ConfigError)
  const named = err.problems.map(p => p.split(':')[0])
  t.same(new Set(named), new Set(['PORT', 'LOG_LEVEL', 'ENTRA_TENANT_ID']))
  t.match(err.message, /PORT: .*got 'eighty'/)
})

t.test('production refuses to start without the Entra configuration', async t => {
  const err = t.throws(() => loadConfig({ NODE_ENV: 'production' })) as ConfigError
  t.match(err.problems, [/ENTRA_TENANT_ID: required when NODE_ENV=production/])
})
