//! One client's state machine, whatever carries it: commands in, replies out to the transport,
//! pushes out through the client's queue. It knows nothing of frames or sockets; transports
//! feed it commands, send what `execute` answers, and drain the queue.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;

use crate::auth::{self, AuthError, Identity};
use crate::broker::{HistoryQuery, Subscribed, Subscriber};
use crate::metrics::Metrics;
use crate::protocol::{
    ClientInfo, Command, ProtocolError, Reply, Request, Since, check_depth, codes, parse_request,
};
use crate::push::Push;
use crate::queue::{ClientQueue, Disconnect};
use crate::rate::TokenBucket;
use crate::state::AppState;

/// Whether the transport should keep the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// Disconnect with this close code and reason.
    Close(Disconnect),
}

/// What a command answered.
#[derive(Debug)]
pub enum Answered {
    /// Its reply, for the transport to send.
    Reply(Arc<Push>),
    /// Its reply is in the client's queue already, in order with what follows it (a
    /// subscription's `subscribed` before its replay and live messages).
    Queued,
}

/// A connected client.
#[derive(Debug)]
pub struct Session {
    client: String,
    identity: Option<Identity>,
    subscriptions: HashSet<String>,
    /// Where pushes go; `None` for a request that cannot subscribe (`/rpc`).
    queue: Option<Arc<ClientQueue>>,
    state: Arc<AppState>,
    compressed: bool,
    rate: Option<TokenBucket>,
    visible: bool,
}

impl Session {
    /// A session whose output goes to `queue`; `compressed` says whether the transport
    /// negotiated permessage-deflate.
    pub fn new(state: Arc<AppState>, queue: Arc<ClientQueue>, compressed: bool) -> Self {
        Self::with_queue(state, Some(queue), compressed)
    }

    /// A session for one request that cannot subscribe (`/rpc`): it has no queue, and
    /// [`Session::execute`] answers every command it runs.
    pub fn request(state: Arc<AppState>) -> Self {
        Self::with_queue(state, None, false).hidden()
    }

    fn with_queue(state: Arc<AppState>, queue: Option<Arc<ClientQueue>>, compressed: bool) -> Self {
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
            visible: true,
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

    /// Handles one command from a connection (`/ws`): errors become `error` replies, and a
    /// refused token ends the connection.
    pub async fn handle(&mut self, request: Request) -> Flow {
        let Request { id, command } = request;
        if let Command::Auth { token } = command {
            return self.auth_command(id, &token);
        }
        match self.execute(Request { id, command }).await {
            Ok(Answered::Reply(reply)) => self.send(reply),
            Ok(Answered::Queued) => {}
            Err(err) => self.error(id, &err),
        }
        Flow::Continue
    }

    /// Runs one command and answers it; the error is returned (for `/ws` to send as an `error`
    /// reply, for the HTTP transports to answer with a status) and nothing is queued.
    pub async fn execute(
        &mut self,
        Request { id, command }: Request,
    ) -> Result<Answered, ProtocolError> {
        let reply = match command {
            Command::Ping => self.prepare(&Reply::Pong { id }),
            Command::Auth { .. } => {
                return Err(ProtocolError::new(
                    codes::BAD_REQUEST,
                    "auth is a /ws command: over HTTP the token comes with each request",
                ));
            }
            _ if self.identity.is_none() => {
                return Err(ProtocolError::new(
                    codes::UNAUTHORIZED,
                    "authenticate first: send {\"type\":\"auth\",\"token\":…}",
                ));
            }
            Command::Subscribe { channel, since } => {
                self.subscribe(id, channel, since).await?;
                return Ok(Answered::Queued);
            }
            Command::Unsubscribe { channel } => self.unsubscribe(id, &channel).await?,
            Command::Publish { channel, data } => self.publish(id, &channel, &data).await?,
            Command::Presence { channel } => self.presence(id, &channel).await?,
            Command::History {
                channel,
                since,
                limit,
            } => self.history(id, &channel, since, limit).await?,
        };
        Ok(Answered::Reply(reply))
    }

    /// Authenticates an HTTP request (`/sse`, `/poll`, `/rpc`) with its token: anonymous
    /// without a secret; with one, the token is required and must be valid. Queues nothing.
    pub fn authorize(&mut self, token: Option<&str>) -> Result<(), ProtocolError> {
        let state = Arc::clone(&self.state);
        let Some(secret) = state.config.jwt_secret.as_deref() else {
            self.identity = Some(Identity::anonymous());
            return Ok(());
        };
        let Some(token) = token else {
            return Err(ProtocolError::new(
                codes::UNAUTHORIZED,
                "a token is required: ?token=<jwt> or Authorization: Bearer <jwt>",
            ));
        };
        self.verify(token, secret).map_err(|err| err.to_protocol())
    }

    /// Queues the `authenticated` greeting (what `/ws` sends first).
    pub fn greet(&self) {
        self.reply(&self.authenticated_reply(None));
    }

    /// The authenticated user, if any (`sub`).
    pub fn user(&self) -> Option<&str> {
        self.identity.as_ref().and_then(|i| i.user.as_deref())
    }

    /// Hides the session from presence: no `join`/`leave`, not listed. For long-polling,
    /// whose subscriptions last one request.
    #[must_use]
    pub fn hidden(mut self) -> Self {
        self.visible = false;
        self
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
        match self.verify(token, secret) {
            Ok(()) => {
                self.reply(&self.authenticated_reply(id));
                Flow::Continue
            }
            Err(err) => self.refuse(id, &err),
        }
    }

    /// Checks a token and takes its identity; a refusal is logged and counted.
    fn verify(&mut self, token: &str, secret: &str) -> Result<(), AuthError> {
        let identity = auth::verify(token, secret)
            .inspect_err(|err| self.state.refused_token(&self.client, err))?;
        self.identity = Some(identity);
        Ok(())
    }

    /// A bad token ends the connection: an `error` reply, then the close its code calls for.
    fn refuse(&self, id: Option<u64>, err: &AuthError) -> Flow {
        self.end_with(id, &err.to_protocol())
    }

    /// The token expired while connected: an `error` reply, then the close for it. The one
    /// place every transport's expiry timer ends up.
    pub fn token_expired(&self) -> Disconnect {
        let err = ProtocolError::new(codes::TOKEN_EXPIRED, "the token expired");
        match self.end_with(None, &err) {
            Flow::Close(disconnect) => disconnect,
            Flow::Continue => unreachable!("token_expired is a code that closes"),
        }
    }

    /// Reports `err`; closes the connection when its code is one that does.
    fn end_with(&self, id: Option<u64>, err: &ProtocolError) -> Flow {
        self.error(id, err);
        err.code.disconnect().map_or(Flow::Continue, Flow::Close)
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
        let Some(queue) = &self.queue else {
            return Err(ProtocolError::new(
                codes::BAD_REQUEST,
                "subscriptions need a stream: /ws, /sse or /poll",
            ));
        };
        let subscriber = Subscriber {
            info: ClientInfo {
                client: self.client.clone(),
                user: self.user().map(str::to_owned),
            },
            queue: Arc::clone(queue),
            compressed: self.compressed,
            visible: self.visible,
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
            .map_err(|err| err.to_protocol())?;
        self.subscriptions.insert(channel);
        Ok(())
    }

    async fn unsubscribe(
        &mut self,
        id: Option<u64>,
        channel: &str,
    ) -> Result<Arc<Push>, ProtocolError> {
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
            .map_err(|err| err.to_protocol())?;
        Ok(self.prepare(&Reply::Unsubscribed { id, channel }))
    }

    async fn publish(
        &mut self,
        id: Option<u64>,
        channel: &str,
        data: &RawValue,
    ) -> Result<Arc<Push>, ProtocolError> {
        self.check_channel(channel)?;
        check_depth(data, self.state.config.max_json_depth)?;
        if let Some(rate) = &mut self.rate
            && !rate.take(Instant::now())
        {
            let limit = self.state.config.publish_rate;
            return Err(ProtocolError::new(
                codes::RATE_LIMITED,
                format!("at most {limit} publishes per second"),
            ));
        }
        let Some(_pass) = self.state.publishing.enter() else {
            return Err(shutting_down());
        };
        let from = self.identity.as_ref().and_then(|i| i.user.as_deref());
        let published = self
            .state
            .broker
            .publish(channel, data, from)
            .await
            .map_err(|err| err.to_protocol())?;
        Ok(self.prepare(&Reply::Published {
            id,
            channel,
            epoch: &published.epoch,
            offset: published.offset,
        }))
    }

    async fn presence(
        &mut self,
        id: Option<u64>,
        channel: &str,
    ) -> Result<Arc<Push>, ProtocolError> {
        self.check_channel(channel)?;
        let clients = self
            .state
            .broker
            .presence(channel)
            .await
            .map_err(|err| err.to_protocol())?;
        Ok(self.prepare(&Reply::Presence {
            id,
            channel,
            clients: &clients,
        }))
    }

    /// A page of history: at most `limit` (and `history_size`) messages and about
    /// `history_page_bytes` of them; `more` tells the client to ask again from the last one.
    async fn history(
        &mut self,
        id: Option<u64>,
        channel: &str,
        since: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Arc<Push>, ProtocolError> {
        self.check_channel(channel)?;
        let config = &self.state.config;
        let query = HistoryQuery {
            since,
            limit: limit.unwrap_or(usize::MAX).min(config.history_size),
            max_bytes: config.history_page_bytes,
        };
        let page = self
            .state
            .broker
            .history(channel, query)
            .await
            .map_err(|err| err.to_protocol())?;
        Ok(self.prepare(&Reply::History {
            id,
            channel,
            epoch: &page.epoch,
            offset: page.offset,
            more: page.more,
            messages: raw_messages(&page.messages),
        }))
    }

    fn error(&self, id: Option<u64>, err: &ProtocolError) {
        self.reply(&Reply::Error {
            id,
            code: err.code,
            message: &err.message,
        });
    }

    fn reply(&self, reply: &Reply<'_>) {
        self.send(self.prepare(reply));
    }

    /// Queues `push` for the client (a session without a queue has no one to send it to).
    fn send(&self, push: Arc<Push>) {
        if let Some(queue) = &self.queue {
            queue.push(push);
        }
    }

    fn prepare(&self, reply: &Reply<'_>) -> Arc<Push> {
        let deflate = self.state.deflate.as_ref().filter(|_| self.compressed);
        Push::reply(reply, deflate)
    }
}

/// A session that is finished (its subscriptions removed) even when the request holding it is
/// dropped half-way: an HTTP client that goes away while its long-poll waits.
#[derive(Debug)]
pub struct Finishing(Option<Session>);

impl Finishing {
    /// Guards `session`.
    pub fn new(session: Session) -> Self {
        Self(Some(session))
    }

    /// The session, no longer guarded (its new owner finishes it).
    pub fn into_inner(mut self) -> Session {
        self.0
            .take()
            .unwrap_or_else(|| unreachable!("taken only by finish(self) or into_inner(self)"))
    }

    /// Finishes now.
    pub async fn finish(mut self) {
        if let Some(mut session) = self.0.take() {
            session.finish().await;
        }
    }
}

impl std::ops::Deref for Finishing {
    type Target = Session;

    fn deref(&self) -> &Session {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only by finish(self)"))
    }
}

impl std::ops::DerefMut for Finishing {
    fn deref_mut(&mut self) -> &mut Session {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only by finish(self)"))
    }
}

impl Drop for Finishing {
    fn drop(&mut self) {
        if let Some(mut session) = self.0.take()
            && !session.subscriptions.is_empty()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { session.finish().await });
        }
    }
}

/// The `message` pushes of a history page as raw JSON values, borrowed (not copied). Reading
/// a raw value checks the JSON without building it, so no nesting depth can make it fail;
/// a push that is not JSON at all (none is: the server wrote it) is left out.
pub fn raw_messages(messages: &[Arc<Push>]) -> Vec<&RawValue> {
    messages
        .iter()
        .filter_map(|m| serde_json::from_slice(m.json()).ok())
        .collect()
}

/// The refusal of a publication once shutdown has begun (it could not reach every subscriber).
pub fn shutting_down() -> ProtocolError {
    ProtocolError::new(
        codes::UNAVAILABLE,
        "the server is shutting down: publish again after reconnecting",
    )
}

/// A connection id: random, so ids do not leak how many clients came before.
fn new_client_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests;
