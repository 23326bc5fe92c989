//! One client's state machine, whatever carries it: commands in, replies and pushes out through
//! the client's queue. It knows nothing of frames or sockets; transports feed it text and drain
//! the queue.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use ripple::{Message, PreparedMessage};
use serde_json::value::RawValue;

use crate::auth::{self, AuthError, Identity};
use crate::broker::{Subscribed, Subscriber};
use crate::metrics::Metrics;
use crate::protocol::{
    ClientInfo, Command, ProtocolError, Reply, Request, Since, codes, parse_request,
};
use crate::queue::{ClientQueue, Disconnect};
use crate::state::AppState;

/// Whether the transport should keep the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// Disconnect with this close code and reason.
    Close(Disconnect),
}

/// A connected client.
#[derive(Debug)]
pub struct Session {
    client: String,
    identity: Option<Identity>,
    subscriptions: HashSet<String>,
    queue: Arc<ClientQueue>,
    state: Arc<AppState>,
    compressed: bool,
    rate: Option<TokenBucket>,
}

impl Session {
    /// A session whose output goes to `queue`; `compressed` says whether the transport
    /// negotiated permessage-deflate.
    pub fn new(state: Arc<AppState>, queue: Arc<ClientQueue>, compressed: bool) -> Self {
        let rate =
            (state.config.publish_rate > 0).then(|| TokenBucket::new(state.config.publish_rate));
        Self {
            client: new_client_id(),
            identity: None,
            subscriptions: HashSet::new(),
            queue,
            state,
            compressed,
            rate,
        }
    }

    /// This connection's id.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// How long until the client's token expires, if it has one.
    pub fn token_lifetime(&self) -> Option<std::time::Duration> {
        let expires = self.identity.as_ref()?.expires?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        Some(std::time::Duration::from_secs(expires.saturating_sub(now)))
    }

    /// Whether the client may use channels yet.
    pub fn is_authenticated(&self) -> bool {
        self.identity.is_some()
    }

    /// Starts the session with the handshake's token, if any. Without a secret every client is
    /// anonymous; with one, a token in the handshake must be valid, and without one the client
    /// must send `auth` before the deadline.
    pub fn start(&mut self, token: Option<&str>) -> Flow {
        let state = Arc::clone(&self.state);
        let Some(secret) = state.config.jwt_secret.as_deref() else {
            self.identity = Some(Identity::anonymous());
            self.reply(&self.authenticated_reply(None));
            return Flow::Continue;
        };
        let Some(token) = token else {
            return Flow::Continue;
        };
        self.authenticate(None, token, secret)
    }

    /// Handles one text message from the client.
    pub async fn handle_text(&mut self, text: &str) -> Flow {
        Metrics::add(&self.state.metrics.messages_in, 1);
        Metrics::add(&self.state.metrics.bytes_in, text.len() as u64);
        match parse_request(text) {
            Ok(request) => self.handle(request).await,
            Err((id, err)) => {
                self.error(id, &err);
                Flow::Continue
            }
        }
    }

    /// Handles one command.
    pub async fn handle(&mut self, Request { id, command }: Request) -> Flow {
        let result = match command {
            Command::Ping => {
                self.reply(&Reply::Pong { id });
                Ok(())
            }
            Command::Auth { token } => return self.auth_command(id, &token),
            _ if self.identity.is_none() => Err(ProtocolError::new(
                codes::UNAUTHORIZED,
                "authenticate first: send {\"type\":\"auth\",\"token\":…}",
            )),
            Command::Subscribe { channel, since } => self.subscribe(id, channel, since).await,
            Command::Unsubscribe { channel } => self.unsubscribe(id, &channel).await,
            Command::Publish { channel, data } => self.publish(id, &channel, &data).await,
            Command::Presence { channel } => self.presence(id, &channel).await,
            Command::History {
                channel,
                since,
                limit,
            } => self.history(id, &channel, since, limit).await,
        };
        if let Err(err) = result {
            self.error(id, &err);
        }
        Flow::Continue
    }

    /// Reports an error that has no request id (a message that is not a command).
    pub fn handle_error(&self, err: &ProtocolError) {
        self.error(None, err);
    }

    /// Leaves every channel (the client is gone).
    pub async fn finish(&mut self) {
        for channel in std::mem::take(&mut self.subscriptions) {
            let _ = self.state.broker.unsubscribe(&channel, &self.client).await;
        }
    }

    fn auth_command(&mut self, id: Option<u64>, token: &str) -> Flow {
        let Some(secret) = self.state.config.jwt_secret.clone() else {
            self.reply(&self.authenticated_reply(id));
            return Flow::Continue;
        };
        if self.identity.is_some() {
            self.error(
                id,
                &ProtocolError::new(
                    codes::ALREADY_AUTHENTICATED,
                    "this connection is already authenticated",
                ),
            );
            return Flow::Continue;
        }
        self.authenticate(id, token, &secret)
    }

    fn authenticate(&mut self, id: Option<u64>, token: &str, secret: &str) -> Flow {
        match auth::verify(token, secret) {
            Ok(identity) => {
                self.identity = Some(identity);
                self.reply(&self.authenticated_reply(id));
                Flow::Continue
            }
            Err(err) => self.refuse(id, &err),
        }
    }

    /// A bad token ends the connection: an `error` reply, then a close with the code for it.
    fn refuse(&self, id: Option<u64>, err: &AuthError) -> Flow {
        tracing::info!(client = %self.client, "refused token: {err}");
        self.state.metrics.reject(crate::metrics::Rejection::Token);
        self.error(id, &err.to_protocol());
        let reason = match err {
            AuthError::Expired => "token expired",
            AuthError::Invalid(_) => "invalid token",
        };
        Flow::Close(Disconnect {
            code: err.close_code(),
            reason,
        })
    }

    fn authenticated_reply(&self, id: Option<u64>) -> Reply<'_> {
        let user = self.identity.as_ref().and_then(|i| i.user.as_deref());
        Reply::Authenticated {
            id,
            client: &self.client,
            user,
        }
    }

    fn check_channel(&self, channel: &str) -> Result<(), ProtocolError> {
        match &self.identity {
            Some(identity) if identity.allows(channel) => Ok(()),
            _ => Err(ProtocolError::new(
                codes::FORBIDDEN,
                format!("the token does not allow channel {channel:?}"),
            )),
        }
    }

    async fn subscribe(
        &mut self,
        id: Option<u64>,
        channel: String,
        since: Option<Since>,
    ) -> Result<(), ProtocolError> {
        self.check_channel(&channel)?;
        if self.subscriptions.contains(&channel) {
            return Err(ProtocolError::new(
                codes::ALREADY_SUBSCRIBED,
                format!("already subscribed to {channel:?}"),
            ));
        }
        if self.subscriptions.len() >= self.state.config.max_subscriptions {
            let max = self.state.config.max_subscriptions;
            return Err(ProtocolError::new(
                codes::TOO_MANY_SUBSCRIPTIONS,
                format!("at most {max} subscriptions"),
            ));
        }
        let subscriber = Subscriber {
            info: ClientInfo {
                client: self.client.clone(),
                user: self.user().map(str::to_owned),
            },
            queue: Arc::clone(&self.queue),
            compressed: self.compressed,
        };
        let reply = |s: &Subscribed| {
            let reply = Reply::Subscribed {
                id,
                channel: &channel,
                epoch: &s.epoch,
                offset: s.offset,
                recovered: s.recovered,
            };
            self.prepare(&reply)
        };
        self.state
            .broker
            .subscribe(&channel, subscriber, since.as_ref(), &reply)
            .await
            .map_err(internal)?;
        self.subscriptions.insert(channel);
        Ok(())
    }

    async fn unsubscribe(&mut self, id: Option<u64>, channel: &str) -> Result<(), ProtocolError> {
        if !self.subscriptions.remove(channel) {
            return Err(ProtocolError::new(
                codes::NOT_SUBSCRIBED,
                format!("not subscribed to {channel:?}"),
            ));
        }
        self.state
            .broker
            .unsubscribe(channel, &self.client)
            .await
            .map_err(internal)?;
        self.reply(&Reply::Unsubscribed { id, channel });
        Ok(())
    }

    async fn publish(
        &mut self,
        id: Option<u64>,
        channel: &str,
        data: &RawValue,
    ) -> Result<(), ProtocolError> {
        self.check_channel(channel)?;
        if let Some(rate) = &mut self.rate
            && !rate.take(Instant::now())
        {
            let limit = self.state.config.publish_rate;
            return Err(ProtocolError::new(
                codes::RATE_LIMITED,
                format!("at most {limit} publishes per second"),
            ));
        }
        let from = self.identity.as_ref().and_then(|i| i.user.as_deref());
        let published = self
            .state
            .broker
            .publish(channel, data, from)
            .await
            .map_err(internal)?;
        self.reply(&Reply::Published {
            id,
            channel,
            epoch: &published.epoch,
            offset: published.offset,
        });
        Ok(())
    }

    async fn presence(&mut self, id: Option<u64>, channel: &str) -> Result<(), ProtocolError> {
        self.check_channel(channel)?;
        let clients = self
            .state
            .broker
            .presence(channel)
            .await
            .map_err(internal)?;
        self.reply(&Reply::Presence {
            id,
            channel,
            clients: &clients,
        });
        Ok(())
    }

    async fn history(
        &mut self,
        id: Option<u64>,
        channel: &str,
        since: Option<u64>,
        limit: Option<usize>,
    ) -> Result<(), ProtocolError> {
        self.check_channel(channel)?;
        let limit = limit
            .unwrap_or(usize::MAX)
            .min(self.state.config.history_size);
        let page = self
            .state
            .broker
            .history(channel, since, limit)
            .await
            .map_err(internal)?;
        let messages = raw_messages(&page.messages);
        let messages = messages.iter().map(AsRef::as_ref).collect();
        self.reply(&Reply::History {
            id,
            channel,
            epoch: &page.epoch,
            offset: page.offset,
            messages,
        });
        Ok(())
    }

    fn user(&self) -> Option<&str> {
        self.identity.as_ref().and_then(|i| i.user.as_deref())
    }

    fn error(&self, id: Option<u64>, err: &ProtocolError) {
        self.reply(&Reply::Error {
            id,
            code: err.code,
            message: &err.message,
        });
    }

    fn reply(&self, reply: &Reply<'_>) {
        self.queue.push(self.prepare(reply));
    }

    fn prepare(&self, reply: &Reply<'_>) -> Arc<PreparedMessage> {
        let deflate = if self.compressed {
            self.state.deflate.as_ref()
        } else {
            None
        };
        Arc::new(PreparedMessage::new(
            Message::from(reply.to_json()),
            deflate,
        ))
    }
}

/// The `message` pushes of a history page as raw JSON values.
pub fn raw_messages(messages: &[Arc<PreparedMessage>]) -> Vec<Box<RawValue>> {
    messages
        .iter()
        .filter_map(|m| {
            let text = String::from_utf8_lossy(m.message().as_bytes()).into_owned();
            RawValue::from_string(text).ok()
        })
        .collect()
}

fn internal(err: crate::broker::BrokerError) -> ProtocolError {
    tracing::warn!("{err}");
    ProtocolError::new(codes::INTERNAL, err.to_string())
}

/// A connection id: random, so ids do not leak how many clients came before.
fn new_client_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Allows `rate` publishes per second with bursts of the same size.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}
