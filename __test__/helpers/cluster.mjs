// A throwaway Redis Cluster on loopback: 3 masters and 3 replicas (six redis-server processes,
// one temp dir each, one password), created with `redis-cli --cluster create`. Bus ports are
// set with --cluster-port (a random client port + 10000 could exceed 65535). A short
// cluster-node-timeout lets a replica take over a killed master within a few seconds.
// Everything is stopped by `stop()`, by PID (and killed on exit by servers.mjs as a last resort).

import { spawn, execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, redisCommand, stopChild, track, waitFor } from './servers.mjs'


function startNode(port, busPort, password, dir, nodeTimeoutMs) {
  return track(
    spawn(
      'redis-server',
      [
        '--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'),
        '--cluster-node-timeout', String(nodeTimeoutMs), '--requirepass', password, '--masterauth', password,
        '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning',
        // Replicas in sync at once (a replica that never synced cannot take over).
        '--repl-diskless-sync-delay', '0',
      ],
      { stdio: ['ignore', 'ignore', 'ignore'] },
    ),
  )
}



/** The ports of the live masters that serve slots, from CLUSTER NODES text. */
function mastersIn(text) {
  return text
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f.length > 8 && /\bmaster\b/.test(f[2]) && !/\bfail/.test(f[2]) && f[7] === 'connected')
    .map((f) => Number(f[1].split('@')[0].split(':')[1]))
}

/**
 * Starts the cluster. Returns { nodes: [{ port, pid, process }], password, urls (one per node,
 * with the password), command(port, args), masters(), stop() }.
 */
export async function startRedisCluster(options = {}) {
  // A port found free can be taken again before its server binds it: start over then.
  let lastError
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(options)
    } catch (error) {
      lastError = error
    }
  }
  throw lastError
}

/** Twelve distinct free ports (a client and a bus port per node). */
async function distinctPorts(count) {
  const ports = new Set()
  for (let tries = 0; ports.size < count && tries < count * 10; tries++) ports.add(await freePort())
  return [...ports]
}

async function startOnce({ nodeTimeoutMs = 2000 } = {}) {
  const password = randomBytes(12).toString('hex')
  const nodes = []
  const stopAll = async () => {
    await Promise.all(nodes.map((node) => stopChild(node.process)))
    for (const node of nodes) rmSync(node.dir, { recursive: true, force: true })
  }
  try {
    const ports = await distinctPorts(12)
    for (let i = 0; i < 6; i++) {
      const [port, busPort] = [ports[2 * i], ports[2 * i + 1]]
      const dir = mkdtempSync(join(tmpdir(), 'rln-cluster-'))
      const child = startNode(port, busPort, password, dir, nodeTimeoutMs)
      nodes.push({ port, busPort, dir, process: child, pid: child.pid })
    }
    for (const node of nodes) {
      await waitFor(async () => {
        if (node.process.exitCode !== null) throw Object.assign(new Error(`node ${node.port} exited`), { fatal: true })
        return (await redisCommand(node.port, password, ['PING'], 500)).startsWith('+PONG')
      }, 5000, `Redis Cluster: node ${node.port} did not answer`)
    }
    const env = { ...process.env, REDISCLI_AUTH: password }
    await new Promise((resolve, reject) => {
      execFile(
        'redis-cli',
        ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'],
        { timeout: 30000, env },
        (error, _stdout, stderr) => (error ? reject(new Error(`redis-cli --cluster create failed: ${stderr || error.message}`)) : resolve()),
      )
    })
    const command = (port, args, timeoutMs) => redisCommand(port, password, args, timeoutMs)
    await waitFor(async () => {
      for (const node of nodes) {
        if (!(await command(node.port, ['CLUSTER', 'INFO'])).includes('cluster_state:ok')) return false
      }
      return true
    }, 15000, 'Redis Cluster: the cluster did not reach cluster_state:ok')
    // …and every node knows who replicates whom (clients asked now see the final topology).
    await waitFor(async () => {
      for (const node of nodes) {
        const text = await command(node.port, ['CLUSTER', 'NODES'])
        if (mastersIn(text).length !== 3 || (text.match(/\bslave\b/g) ?? []).length !== 3) return false
      }
      return true
    }, 15000, 'Redis Cluster: the replicas were not known everywhere')
    await waitFor(async () => {
      for (const node of nodes) {
        const info = await command(node.port, ['INFO', 'replication'])
        if (info.includes('role:slave') && !info.includes('master_link_status:up')) return false
      }
      return true
    }, 15000, 'Redis Cluster: the replicas did not sync')
    return {
      nodes,
      password,
      urls: nodes.map((n) => `redis://:${password}@127.0.0.1:${n.port}`),
      command,
      /** The ports of the nodes that are masters now (CLUSTER NODES of a live node). */
      async masters() {
        for (const node of nodes) {
          if (node.process.exitCode !== null || node.process.signalCode !== null) continue
          return mastersIn(await command(node.port, ['CLUSTER', 'NODES']))
        }
        return []
      },
      /** The port of a replica of the master on `masterPort`. */
      async replicaOf(masterPort) {
        const fields = (await command(masterPort, ['CLUSTER', 'NODES'])).split('\n').map((line) => line.split(' '))
        const master = fields.find((f) => f[1]?.split('@')[0] === `127.0.0.1:${masterPort}`)
        const replica = fields.find((f) => f[3] === master?.[0] && /\bslave\b/.test(f[2]))
        if (!replica) throw new Error(`no replica of ${masterPort}`)
        return Number(replica[1].split('@')[0].split(':')[1])
      },
      /** Resolves (with Date.now()) once the node on `port` says it is a master serving slots. */
      async waitForMaster(port, timeoutMs = 20000) {
        await waitFor(async () => mastersIn(await command(port, ['CLUSTER', 'NODES'])).includes(port), timeoutMs, `Redis Cluster: ${port} did not become a master`)
        return Date.now()
      },
      /** SIGKILL to the node on `port`. */
      kill(port) {
        nodes.find((n) => n.port === port)?.process.kill('SIGKILL')
      },
      stop: stopAll,
    }
  } catch (error) {
    await stopAll()
    throw error
  }
}
