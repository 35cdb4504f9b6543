import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { redisCommand, freePort } from '/work/main/__test__/helpers/servers.mjs'
const port = await freePort()
const dir = mkdtempSync(join(tmpdir(), 'x-'))
writeFileSync(join(dir, 's.conf'), `port ${port}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor m 127.0.0.1 6399 2\n`)
const c = spawn('redis-server', [join(dir, 's.conf'), '--sentinel'], { stdio: 'inherit' })
await new Promise((r) => setTimeout(r, 1000))
console.log(JSON.stringify(await redisCommand(port, '', ['SENTINEL', 'MASTER', 'm']).catch((e) => e.message)))
c.kill(); process.exit(0)
