//! Runs commands on one multiplexed Redis connection, shared by every HTTP request.
//!
//! Each HTTP request becomes one contiguous write on that connection (a Redis pipeline), so a
//! `/multi-exec` body's MULTI…EXEC can never interleave with another request's commands.
//! Commands that would change the shared connection's state (MULTI outside `/multi-exec`,
//! SELECT, blocking pops, SUBSCRIBE, …) are refused before they reach Redis.

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, Value};

use crate::args::Command;
use crate::config::ServerConfig;
use crate::encoding::error_text;
use crate::error::StartError;
use crate::scripts::ShaMap;

/// The answer to one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Value(Value),
    Error(String),
}

/// The answer to a `/multi-exec` body.
#[derive(Debug)]
pub enum MultiOutcome {
    Committed(Vec<Reply>),
    /// A command failed to queue, or EXEC answered EXECABORT: nothing ran.
    Aborted(String),
}

/// Redis could not be reached or did not answer in time; the request as a whole fails.
#[derive(Debug)]
pub enum Unavailable {
    Unreachable(String),
    TimedOut(String),
}

/// What to do with a reply after Redis answered.
enum After {
    Nothing,
    /// SCRIPT LOAD of a rewritten script: answer with the SHA1 of what the client sent.
    ReportOriginalSha(String),
}

/// The script-cache commands `prepare` rewrites (named first, then rewritten: the name is
/// borrowed from the command the rewrite changes).
enum ScriptCommand {
    Eval,
    EvalSha,
    Load,
    Exists,
    Flush,
    Other,
}

struct Prepared<'a> {
    command: Command<'a>,
    after: After,
}

/// `SCRIPT FLUSH [ASYNC|SYNC]`: only a flush Redis will accept forgets the script mappings.
fn is_valid_script_flush(command: &[Cow<'_, [u8]>]) -> bool {
    match command.len() {
        2 => true,
        3 => command[2].eq_ignore_ascii_case(b"ASYNC") || command[2].eq_ignore_ascii_case(b"SYNC"),
        _ => false,
    }
}

/// Commands that would block the shared connection or change its state for everyone.
const CONNECTION_STATE_COMMANDS: &[&str] = &[
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SELECT",
    "AUTH",
    "HELLO",
    "QUIT",
    "RESET",
    "MONITOR",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "SYNC",
    "PSYNC",
    "REPLCONF",
    "BLPOP",
    "BRPOP",
    "BRPOPLPUSH",
    "BLMOVE",
    "BLMPOP",
    "BZPOPMIN",
    "BZPOPMAX",
    "BZMPOP",
    "WAIT",
    "WAITAOF",
];

pub struct Executor {
    client: redis::Client,
    redis_display: String,
    response_timeout: Option<Duration>,
    connection: Mutex<Option<ConnectionManager>>,
    connecting: tokio::sync::Mutex<()>,
    shas: ShaMap,
}

impl Executor {
    pub fn new(config: &ServerConfig) -> Result<Self, StartError> {
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|e| StartError::RedisUrl(e.to_string()))?;
        Ok(Executor {
            client,
            redis_display: config.redis_display(),
            response_timeout: config.redis_timeout(),
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            shas: ShaMap::default(),
        })
    }

    fn cached_connection(&self) -> Option<ConnectionManager> {
        self.connection.lock().ok().and_then(|guard| guard.clone())
    }

    /// The shared connection, opened on first use; the manager reconnects by itself afterwards.
    async fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        if let Some(conn) = self.cached_connection() {
            return Ok(conn);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(conn) = self.cached_connection() {
            return Ok(conn);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(self.response_timeout)
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(|e| self.unavailable(&e))?;
        if let Ok(mut guard) = self.connection.lock() {
            *guard = Some(conn.clone());
        }
        Ok(conn)
    }

    fn unavailable(&self, err: &redis::RedisError) -> Unavailable {
        if err.is_timeout() {
            Unavailable::TimedOut(format!(
                "ERR Redis at {} did not answer in time: {err}",
                self.redis_display
            ))
        } else {
            Unavailable::Unreachable(format!(
                "ERR Redis at {} is unreachable: {err}",
                self.redis_display
            ))
        }
    }

    /// Rewrites script commands and refuses connection-state commands.
    ///
    /// Names are compared in place, ignoring ASCII case: this runs for every command of every
    /// request, and upper-casing copies of the name and subcommand cost two allocations each.
    fn prepare<'a>(&self, mut command: Command<'a>) -> Result<Prepared<'a>, String> {
        let Some(name) = command.first() else {
            return Err("ERR empty command".into());
        };
        let is = |text: &str| name.eq_ignore_ascii_case(text.as_bytes());
        let sub_is = |text: &str| {
            command
                .get(1)
                .is_some_and(|sub| sub.eq_ignore_ascii_case(text.as_bytes()))
        };
        if CONNECTION_STATE_COMMANDS.iter().any(|refused| is(refused))
            || ((is("XREAD") || is("XREADGROUP"))
                && command.iter().any(|a| a.eq_ignore_ascii_case(b"BLOCK")))
            || (is("CLIENT") && sub_is("REPLY"))
        {
            return Err(format!(
                "ERR '{}' is not supported by the REST API",
                String::from_utf8_lossy(name).to_ascii_lowercase()
            ));
        }
        let script = if is("EVAL") || is("EVAL_RO") {
            ScriptCommand::Eval
        } else if is("EVALSHA") || is("EVALSHA_RO") {
            ScriptCommand::EvalSha
        } else if !is("SCRIPT") {
            ScriptCommand::Other
        } else if sub_is("LOAD") {
            ScriptCommand::Load
        } else if sub_is("EXISTS") {
            ScriptCommand::Exists
        } else if sub_is("FLUSH") && is_valid_script_flush(&command) {
            ScriptCommand::Flush
        } else {
            ScriptCommand::Other
        };
        let mut after = After::Nothing;
        match script {
            ScriptCommand::Eval if command.len() > 1 => {
                command[1] = Cow::Owned(self.shas.prepare_script(&command[1]).0);
            }
            ScriptCommand::EvalSha if command.len() > 1 => {
                if let Some(mapped) = self.shas.translate(&command[1]) {
                    command[1] = Cow::Owned(mapped);
                }
            }
            ScriptCommand::Load if command.len() > 2 => {
                let (script, original) = self.shas.prepare_script(&command[2]);
                command[2] = Cow::Owned(script);
                if let Some(original) = original {
                    after = After::ReportOriginalSha(original);
                }
            }
            ScriptCommand::Exists => {
                for sha in command.iter_mut().skip(2) {
                    if let Some(mapped) = self.shas.translate(sha) {
                        *sha = Cow::Owned(mapped);
                    }
                }
            }
            // SCRIPT FLUSH: the rewritten-SHA map no longer matches Redis' cache. It is cleared
            // here, in command order, and not when Redis answers: a SCRIPT LOAD / EVAL later in
            // the same body registers its mapping while being prepared, before the FLUSH reply
            // arrives, and clearing on the reply would drop that fresh mapping (SCRIPT LOAD would
            // then return a SHA1 that EVALSHA answers with NOSCRIPT).
            ScriptCommand::Flush => self.shas.clear(),
            _ => {}
        }
        Ok(Prepared { command, after })
    }

    fn finish(&self, value: Value, after: &After) -> Reply {
        match value {
            Value::ServerError(err) => Reply::Error(error_text(&err)),
            Value::BulkString(_) if matches!(after, After::ReportOriginalSha(_)) => {
                let After::ReportOriginalSha(sha) = after else {
                    unreachable!("guarded by the match arm")
                };
                Reply::Value(Value::BulkString(sha.clone().into_bytes()))
            }
            value => Reply::Value(value),
        }
    }

    async fn send(&self, commands: &[&Command<'_>]) -> Result<Vec<Value>, Unavailable> {
        let mut pipe = Pipeline::with_capacity(commands.len());
        for command in commands {
            // Sized up front: growing the packed command argument by argument reallocates.
            let bytes: usize = command.iter().map(|part| part.len()).sum();
            let mut cmd = Cmd::with_capacity(command.len(), bytes);
            for part in command.iter() {
                cmd.arg(part.as_ref());
            }
            pipe.add_command(cmd);
        }
        pipe.ignore_errors();
        let mut conn = self.connection().await?;
        let reply: Value = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(&e))?;
        match reply {
            Value::Array(values) if values.len() == commands.len() => Ok(values),
            other => Err(Unavailable::Unreachable(format!(
                "ERR unexpected reply shape from Redis: {other:?}"
            ))),
        }
    }

    /// Runs commands in order (one command is a pipeline of one). Commands refused locally get
    /// their error item without reaching Redis; the others still run.
    pub async fn run_pipeline(
        &self,
        commands: Vec<Command<'_>>,
    ) -> Result<Vec<Reply>, Unavailable> {
        let prepared: Vec<Result<Prepared, String>> =
            commands.into_iter().map(|c| self.prepare(c)).collect();
        let to_send: Vec<&Command<'_>> = prepared
            .iter()
            .filter_map(|p| p.as_ref().ok().map(|p| &p.command))
            .collect();
        let mut values = if to_send.is_empty() {
            Vec::new()
        } else {
            self.send(&to_send).await?
        }
        .into_iter();
        Ok(prepared
            .iter()
            .map(|p| match p {
                Ok(p) => match values.next() {
                    Some(value) => self.finish(value, &p.after),
                    None => Reply::Error("ERR missing reply from Redis".into()),
                },
                Err(refusal) => Reply::Error(refusal.clone()),
            })
            .collect())
    }

    /// Runs MULTI, the commands and EXEC as one contiguous write on the shared connection.
    pub async fn run_multi(&self, commands: Vec<Command<'_>>) -> Result<MultiOutcome, Unavailable> {
        let mut prepared = Vec::with_capacity(commands.len());
        for command in commands {
            match self.prepare(command) {
                Ok(p) => prepared.push(p),
                Err(refusal) => return Ok(MultiOutcome::Aborted(refusal)),
            }
        }
        let multi: Command = vec![Cow::Borrowed(b"MULTI")];
        let exec: Command = vec![Cow::Borrowed(b"EXEC")];
        let mut to_send: Vec<&Command<'_>> = Vec::with_capacity(prepared.len() + 2);
        to_send.push(&multi);
        to_send.extend(prepared.iter().map(|p| &p.command));
        to_send.push(&exec);
        let mut values = self.send(&to_send).await?;
        let exec_reply = values.pop().unwrap_or(Value::Nil);
        // values[0] is MULTI's OK; the rest are QUEUED or a queueing error.
        if let Some(err) = values.iter().skip(1).find_map(|v| match v {
            Value::ServerError(err) => Some(error_text(err)),
            _ => None,
        }) {
            return Ok(MultiOutcome::Aborted(err));
        }
        match exec_reply {
            Value::Array(items) if items.len() == prepared.len() => Ok(MultiOutcome::Committed(
                items
                    .into_iter()
                    .zip(prepared.iter())
                    .map(|(value, p)| self.finish(value, &p.after))
                    .collect(),
            )),
            Value::ServerError(err) => Ok(MultiOutcome::Aborted(error_text(&err))),
            other => Ok(MultiOutcome::Aborted(format!(
                "EXECABORT Transaction discarded (unexpected EXEC reply {other:?})"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::sha1_hex;

    fn executor() -> Executor {
        // Redis is connected lazily, so nothing listens on this port and nothing needs to.
        Executor::new(&ServerConfig::new("redis://127.0.0.1:1", "token")).unwrap()
    }

    fn cmd<'a>(parts: &[&'a [u8]]) -> Command<'a> {
        parts.iter().map(|p| Cow::Borrowed(*p)).collect()
    }

    #[test]
    fn script_flush_then_load_in_one_body_keeps_the_new_mapping() {
        let ex = executor();
        let script: &[u8] = b"#!lua flags=allow-key-locking\nreturn 1";
        let original = sha1_hex(script);
        let rewritten = sha1_hex(b"#!lua\nreturn 1");
        // One body: [["SCRIPT","FLUSH"],["SCRIPT","LOAD",script]]; every command is prepared
        // before Redis answers any of them, and the answers are then finished in order.
        let flush = ex.prepare(cmd(&[b"SCRIPT", b"FLUSH"])).unwrap();
        let load = ex.prepare(cmd(&[b"script", b"load", script])).unwrap();
        assert_eq!(&*load.command[2], b"#!lua\nreturn 1");
        assert_eq!(
            ex.finish(Value::Okay, &flush.after),
            Reply::Value(Value::Okay)
        );
        assert_eq!(
            ex.finish(
                Value::BulkString(rewritten.clone().into_bytes()),
                &load.after
            ),
            Reply::Value(Value::BulkString(original.clone().into_bytes()))
        );
        // A later EVALSHA with the SHA1 SCRIPT LOAD returned must reach the rewritten script.
        let evalsha = ex
            .prepare(cmd(&[b"EVALSHA", original.as_bytes(), b"0"]))
            .unwrap();
        assert_eq!(&*evalsha.command[1], rewritten.as_bytes());
    }

    #[test]
    fn script_flush_forgets_mappings_but_an_invalid_flush_does_not() {
        let ex = executor();
        let script: &[u8] = b"#!lua flags=allow-key-locking\nreturn 2";
        let original = sha1_hex(script);
        let rewritten = sha1_hex(b"#!lua\nreturn 2");
        ex.prepare(cmd(&[b"EVAL", script, b"0"])).unwrap();
        let translated = |ex: &Executor| {
            ex.prepare(cmd(&[b"evalsha", original.as_bytes(), b"0"]))
                .unwrap()
                .command[1]
                .clone()
        };
        assert_eq!(translated(&ex), rewritten.clone().into_bytes());
        ex.prepare(cmd(&[b"SCRIPT", b"FLUSH", b"BOGUS"])).unwrap();
        assert_eq!(translated(&ex), rewritten.into_bytes());
        ex.prepare(cmd(&[b"script", b"flush", b"async"])).unwrap();
        assert_eq!(translated(&ex), original.clone().into_bytes());
    }
}
