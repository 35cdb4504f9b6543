// A throwaway Redis Sentinel group on loopback: a master and its replica (one password) and
// three sentinels (quorum 2, down-after 1 s) monitoring them as "mymaster". Started with the
// same redis-server binary (`--sentinel`); stopped by `stop()`, by PID.

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, redisCommand, stopChild, track, waitFor } from './servers.mjs'

export const GROUP = 'mymaster'


export async function startSentinelGroup() {
  const password = randomBytes(12).toString('hex')
  const procs = []
  const dirs = []
  const stop = async () => {
    await Promise.all(procs.map((p) => stopChild(p.process)))
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  }
  try {
    const server = async (extra) => {
      const port = await freePort()
      const dir = mkdtempSync(join(tmpdir(), 'rln-sentinel-'))
      dirs.push(dir)
      const child = track(
        spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--masterauth', password, '--save', '', '--appendonly', 'no', '--dir', dir, '--repl-diskless-sync-delay', '0', '--loglevel', 'warning', ...extra], { stdio: 'ignore' }),
      )
      procs.push({ port, process: child, role: 'server' })
      await waitFor(async () => (await redisCommand(port, password, ['PING'], 500)).includes('PONG'), 5000, `Redis Sentinel: redis-server ${port} did not answer`)
      return port
    }
    const masterPort = await server([])
    const replicaPort = await server(['--replicaof', '127.0.0.1', String(masterPort)])
    await waitFor(async () => (await redisCommand(replicaPort, password, ['INFO', 'replication'])).includes('master_link_status:up'), 10000, 'Redis Sentinel: the replica did not sync')
    const sentinelPorts = []
    for (let i = 0; i < 3; i++) {
      const port = await freePort()
      const dir = mkdtempSync(join(tmpdir(), 'rln-sentinel-'))
      dirs.push(dir)
      const conf = join(dir, 'sentinel.conf')
      writeFileSync(
        conf,
        [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${GROUP} 127.0.0.1 ${masterPort} 2`, `sentinel auth-pass ${GROUP} ${password}`, `sentinel down-after-milliseconds ${GROUP} 1000`, `sentinel failover-timeout ${GROUP} 5000`, 'loglevel warning', ''].join('\n'),
      )
      const child = track(spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' }))
      procs.push({ port, process: child, role: 'sentinel' })
      sentinelPorts.push(port)
    }
    // Every sentinel knows the replica and the two other sentinels (needed to agree on a failover).
    await waitFor(async () => {
      for (const port of sentinelPorts) {
        const info = await redisCommand(port, '', ['SENTINEL', 'MASTER', GROUP])
        if (!/num-other-sentinels\r\n\$1\r\n2\r\n/.test(info) || !/num-slaves\r\n\$1\r\n1\r\n/.test(info)) return false
      }
      return true
    }, 20000, 'Redis Sentinel: the sentinels did not find each other and the replica')
    const sentinelCommand = (args) => redisCommand(sentinelPorts[0], '', args)
    return {
      password,
      name: GROUP,
      sentinels: sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
      servers: [masterPort, replicaPort],
      command: (port, args) => redisCommand(port, password, args),
      /** The master's port as the sentinels see it now. */
      async master() {
        const reply = await sentinelCommand(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', GROUP])
        return Number(reply.split('\r\n')[4])
      },
      failover: () => sentinelCommand(['SENTINEL', 'FAILOVER', GROUP]),
      kill(port) {
        procs.find((p) => p.port === port)?.process.kill('SIGKILL')
      },
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}
