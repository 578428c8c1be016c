//! Start-up, the router, and shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use moat_core::{ErrorCode, ModelAccess, Role};
use moat_store::{NewKey, Store, StoreError, UsageWriter};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::{KeyResolver, display_prefix, generate_secret, hash_secret};
use crate::config::Settings;
use crate::error::ApiError;
use crate::fleet::Routing;
use crate::metrics::{Metrics, UsageProgress};
use crate::state::AppState;
use crate::time::now_ms;
use crate::{admin, edge, ops, proxy};

/// How long shutdown waits for usage settlement and the final usage flush.
const DRAIN_DEADLINE: Duration = Duration::from_secs(15);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A deployment's client could not be built.
    #[error("deployment `{deployment}`: {message}")]
    Upstream {
        /// The deployment.
        deployment: String,
        /// Why.
        message: String,
    },
    /// Single sign-on or mail could not be set up.
    #[error("{0}")]
    Sso(String),
    /// The Redis URL is not usable.
    #[error("{0}")]
    Redis(String),
    /// The trace exporter could not be built.
    #[error("{0}")]
    Telemetry(String),
    /// The TLS certificate could not be loaded.
    #[error("server.tls: {0}")]
    Tls(String),
}

/// The running gateway's shared state and background writer.
#[derive(Debug)]
pub struct Gateway {
    state: Arc<AppState>,
    writer: UsageWriter,
    shutdown_grace: Duration,
    drain_delay: Duration,
    /// SCIM provisioning, when a token is configured.
    scim: Option<moat_identity::scim::ScimState>,
    /// Browser sign-in and the device flow.
    web: moat_identity::web::WebState,
    /// Fan-out to other replicas, when configured.
    redis: Option<crate::fanout::RedisSettings>,
    /// How long usage records are kept.
    usage_retention: Option<Duration>,
    /// How long hourly rollups are kept.
    rollup_retention: Option<Duration>,
    /// Connection limits.
    listener: crate::listener::ListenerSettings,
    /// The certificate served, with TLS.
    certificate: Option<Arc<crate::listener::tls::ServedCertificate>>,
}

impl Gateway {
    /// Opens the store, builds every upstream client, and starts the usage writer.
    ///
    /// `env_admin_key` is `MOAT_ADMIN_KEY`. Without it, and with no admin key in the store, a
    /// bootstrap admin key is created and its secret returned so the caller can show it once.
    pub async fn start(
        settings: Settings,
        env_admin_key: Option<&str>,
    ) -> Result<(Gateway, Option<String>), StartError> {
        let store = Store::open_with(&settings.store_url, settings.store_migrations).await?;
        let routing = Routing::build(settings.catalog.clone(), &settings.deployments, settings.routing, None)
            .map_err(|(deployment, message)| StartError::Upstream { deployment, message })?;
        let bootstrap_secret = match env_admin_key {
            Some(_) => None,
            None if store.has_active_admin_key().await? => None,
            None => Some(create_bootstrap_admin(&store).await?),
        };
        let mailer =
            settings.smtp.as_ref().map(moat_identity::mail::Mailer::new).transpose().map_err(StartError::Sso)?;
        let telemetry =
            crate::telemetry::Telemetry::start(settings.telemetry.as_ref()).map_err(StartError::Telemetry)?;
        let response_cache = crate::response_cache::ResponseCache::new(settings.redis.as_ref())
            .map(Arc::new)
            .map_err(StartError::Redis)?;
        let counters = match &settings.redis {
            Some(redis) => moat_store::counters::CounterStore::Redis(
                moat_store::counters::RedisCounters::new(
                    &redis.url,
                    &redis.key_prefix,
                    settings.admission.counter_timeout,
                )
                .map_err(|e| StartError::Redis(e.to_string()))?,
            ),
            None => moat_store::counters::CounterStore::memory(),
        };
        let admission = crate::admission::Admission::new(counters, settings.admission.clone(), store.clone());
        admission.refresh().await?;
        let data_policies = crate::data_policy::DataPolicies::new(settings.policy.clone());
        data_policies.refresh(&store).await?;
        let certificate = match settings.listener.tls.clone() {
            Some(tls) => Some(Arc::new(crate::listener::tls::ServedCertificate::load(tls).map_err(StartError::Tls)?)),
            None => None,
        };
        let prompt_vault = match settings.encryption.clone() {
            Some(keys) => Some(crate::prompt_vault::PromptVault::open(&store, keys).await?),
            None => None,
        };
        let (usage, writer) = UsageWriter::spawn(store.clone(), settings.usage_writer.clone())?;
        let state = Arc::new(AppState {
            routing: ArcSwap::from_pointee(routing),
            keys: KeyResolver::new(store.clone(), env_admin_key),
            store,
            usage,
            metrics: Metrics::new().with_usage_progress(UsageProgress {
                persisted: writer.persisted(),
                failed_writes: writer.failed_writes(),
                spooled: writer.spooled(),
            }),
            tasks: TaskTracker::new(),
            max_body_bytes: settings.max_body_bytes,
            body_read_timeout: settings.body_read_timeout,
            hsts: certificate.as_ref().and_then(|c| c.hsts()),
            stream_keepalive: settings.stream_keepalive,
            draining: AtomicBool::new(false),
            hard_stop: CancellationToken::new(),
            stopping: CancellationToken::new(),
            mailer,
            telemetry,
            response_cache,
            price_catalog: settings.price_catalog.clone(),
            admission,
            data_policies,
            prompt_vault,
            alerts: crate::alerts::Alerts::new(settings.webhooks.clone(), &settings.egress),
            references: settings.references.clone(),
            settings_summary: crate::config::summary::at_start(&settings),
        });
        let scim = settings.scim_token.as_ref().map(|token| {
            let keys = state.keys.clone();
            moat_identity::scim::ScimState::new(
                state.store.clone(),
                secrecy::ExposeSecret::expose_secret(token),
                Arc::new(move || keys.invalidate()),
            )
        });
        let keys = state.keys.clone();
        let mut web = moat_identity::web::WebState::new(
            state.store.clone(),
            settings.sign_in,
            Arc::new(move || keys.invalidate()),
        );
        if let Some(sso) = settings.sso.clone() {
            web = web.with_sso(
                moat_identity::sso::Sso::new(sso, settings.egress.clone())
                    .map_err(|e| StartError::Sso(format!("sso: {}", e.0)))?,
            );
        }
        let gateway = Gateway {
            state,
            writer,
            shutdown_grace: settings.shutdown_grace,
            drain_delay: settings.drain_delay,
            scim,
            web,
            redis: settings.redis.clone(),
            usage_retention: settings.usage_retention,
            rollup_retention: settings.rollup_retention,
            listener: settings.listener.clone(),
            certificate,
        };
        Ok((gateway, bootstrap_secret))
    }

    /// A handle that swaps in a new configuration while the gateway serves.
    pub fn reloader(&self) -> Reloader {
        Reloader { state: self.state.clone(), certificate: self.certificate.clone() }
    }

    /// The HTTP application.
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        let mut app = Router::new()
            .route("/v1/chat/completions", post(proxy::chat_completions))
            .route("/v1/completions", post(proxy::completions))
            .route("/v1/embeddings", post(proxy::embeddings))
            .route("/v1/models", get(proxy::list_models))
            .route("/v1/messages", post(proxy::messages))
            .route("/v1/responses", post(proxy::responses))
            // Anthropic clients are often pointed at a base URL with a prefix
            // (ANTHROPIC_BASE_URL=https://gateway/anthropic).
            .route("/anthropic/v1/messages", post(proxy::messages))
            .route("/anthropic/v1/messages/count_tokens", post(proxy::count_tokens))
            .route("/anthropic/v1/models", get(proxy::list_models))
            .route("/anthropic", get(ops::root))
            .route("/v1/messages/count_tokens", post(proxy::count_tokens))
            .merge(admin_routes())
            .route("/healthz", get(ops::healthz))
            .route("/readyz", get(ops::readyz))
            .route("/metrics", get(ops::metrics))
            .route("/", get(ops::root))
            .fallback(ops::not_found)
            .method_not_allowed_fallback(ops::method_not_allowed)
            .with_state(state.clone());
        if let Some(scim) = &self.scim {
            app = app.merge(moat_identity::scim::router(scim.clone()));
        }
        app = app.merge(moat_identity::web::router(self.web.clone()));
        // The console calls the admin API in process, as the signed-in person.
        let admin = admin_routes().with_state(state.clone());
        app = app.merge(moat_console::router(moat_console::ConsoleState::new(self.web.clone(), admin)));
        app.layer(axum::middleware::from_fn_with_state(state, edge::edge))
            .layer(CatchPanicLayer::custom(panic_response))
    }

    /// The number of usage records stored so far.
    pub fn usage_persisted(&self) -> watch::Receiver<u64> {
        self.writer.persisted()
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting, lets in-flight
    /// requests and streams finish for up to `server.shutdown_grace` (cutting the rest), settles
    /// their usage and flushes every usage record.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(listen = %addr, "moat is listening");
        }
        state.tasks.spawn(crate::health_checks::run(state.clone()));
        state.tasks.spawn(crate::retention::run(state.clone(), self.usage_retention, self.rollup_retention));
        state.tasks.spawn(crate::admission::refresh_loop(state.clone()));
        if let Some(redis) = &self.redis {
            match crate::fanout::start(redis, state.keys.clone(), &state.tasks, state.stopping.clone()) {
                Ok(announcer) => state.keys.announce_through(announcer),
                Err(error) => tracing::error!(%error, "redis fan-out is off"),
            }
        }
        if let Some(certificate) = &self.certificate {
            state.tasks.spawn(certificate.clone().watch(state.stopping.clone()));
        }
        let (begun_tx, mut begun) = watch::channel(false);
        let signal_state = state.clone();
        let drain_delay = self.drain_delay;
        let graceful = async move {
            shutdown.await;
            signal_state.draining.store(true, Ordering::Relaxed);
            if !drain_delay.is_zero() {
                tracing::info!(
                    delay_ms = drain_delay.as_millis(),
                    "shutdown requested: /readyz now fails; still serving until load balancers notice"
                );
                tokio::time::sleep(drain_delay).await;
            }
            signal_state.stopping.cancel();
            tracing::info!("shutdown begun: no new connections; finishing in-flight requests");
            let _ = begun_tx.send(true);
        };
        let tls = match &self.certificate {
            Some(certificate) => Some(tokio_rustls::TlsAcceptor::from(
                certificate.server_config().map_err(|e| std::io::Error::other(format!("server.tls: {e}")))?,
            )),
            None => None,
        };
        let stop_accepting = CancellationToken::new();
        let stop = stop_accepting.clone();
        let graceful = async move {
            graceful.await;
            stop.cancel();
        };
        let serving =
            crate::listener::serve(listener, self.router(), self.listener.clone(), tls, state.clone(), stop_accepting);
        let server = async move { tokio::join!(serving, graceful).0 };
        let mut server = std::pin::pin!(server);
        let grace = self.shutdown_grace;
        let served = tokio::select! {
            result = &mut server => result,
            () = async {
                let _ = begun.wait_for(|b| *b).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace elapsed; ending the remaining requests");
                state.hard_stop.cancel();
                server.await
            }
        };
        state.tasks.close();
        if tokio::time::timeout(DRAIN_DEADLINE, state.tasks.wait()).await.is_err() {
            tracing::error!("usage settlement did not finish before the drain deadline");
        }
        drop(state);
        self.writer.drain(DRAIN_DEADLINE).await;
        self.state.telemetry.shutdown().await;
        tracing::info!("shutdown complete");
        served
    }
}

/// Applies a new configuration to a running gateway: its `[[deployments]]`, `[[models]]` and
/// `[routing]`. Requests in flight finish on the configuration they started with; what is known
/// of a deployment (health, load, latency) carries over when it keeps its name; the data
/// policy default too, and the TLS certificate is re-read. Other sections (listener, store,
/// logs) take effect at the next start.
#[derive(Debug, Clone)]
pub struct Reloader {
    state: Arc<AppState>,
    certificate: Option<Arc<crate::listener::tls::ServedCertificate>>,
}

impl Reloader {
    /// Swaps `settings` in. Fails, leaving the running configuration untouched, when a
    /// deployment's client cannot be built.
    pub fn apply(&self, settings: &Settings) -> Result<(), StartError> {
        let current = self.state.routing.load_full();
        let routing = Routing::build(settings.catalog.clone(), &settings.deployments, settings.routing, Some(&current))
            .map_err(|(deployment, message)| StartError::Upstream { deployment, message })?;
        self.state.routing.store(Arc::new(routing));
        self.state.data_policies.set_default(settings.policy.clone());
        if let Some(certificate) = &self.certificate {
            certificate.reload();
        }
        Ok(())
    }
}

async fn create_bootstrap_admin(store: &Store) -> Result<String, StoreError> {
    let secret = generate_secret();
    let key = NewKey {
        id: format!("key_{}", uuid::Uuid::now_v7().simple()),
        name: "bootstrap admin".into(),
        owner: None,
        user_id: None,
        team_id: None,
        role: Role::Admin,
        secret_hash: hash_secret(&secret).to_vec(),
        prefix: display_prefix(&secret),
        models: ModelAccess::All,
        created_at_ms: now_ms(),
        expires_at_ms: None,
    };
    store.insert_key(&key).await?;
    Ok(secret)
}

/// The admin API (`/admin/v1/...`): what the CLI, the console and scripts use.
fn admin_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/keys", post(admin::create_key).get(admin::list_keys))
        .route("/admin/v1/keys/{id}", get(admin::get_key).delete(admin::revoke_key))
        .route("/admin/v1/usage", get(admin::list_usage))
        .route("/admin/v1/usage/{id}/prompt", get(admin::get_prompt))
        .route("/admin/v1/deployments", get(admin::list_deployments))
        .route("/admin/v1/prices", get(admin::list_prices))
        .route("/admin/v1/settings", get(admin::settings))
        .route("/admin/v1/users", post(admin::create_user).get(admin::list_users))
        .route("/admin/v1/users/{id}", get(admin::get_user).patch(admin::update_user))
        .route("/admin/v1/users/{id}/password", put(admin::set_password))
        .route("/admin/v1/teams", post(admin::create_team).get(admin::list_teams))
        .route("/admin/v1/teams/{id}", get(admin::get_team))
        .route("/admin/v1/teams/{id}/members", get(admin::list_members))
        .route(
            "/admin/v1/teams/{id}/policy",
            get(admin::get_team_policy).put(admin::put_team_policy).delete(admin::delete_team_policy),
        )
        .route("/admin/v1/policy", get(admin::default_policy))
        .route("/admin/v1/teams/{id}/members/{user_id}", put(admin::put_member).delete(admin::remove_member))
        .route("/admin/v1/invitations", post(admin::create_invitation).get(admin::list_invitations))
        .route("/admin/v1/invitations/{id}", delete(admin::revoke_invitation))
        .route("/admin/v1/budgets", post(admin::create_budget).get(admin::list_budgets))
        .route(
            "/admin/v1/budgets/{id}",
            get(admin::get_budget).patch(admin::update_budget).delete(admin::delete_budget),
        )
        .route("/admin/v1/budgets/{id}/reset", post(admin::reset_budget))
        .route("/admin/v1/limits", post(admin::create_limit).get(admin::list_limits))
        .route("/admin/v1/limits/{id}", get(admin::get_limit).patch(admin::update_limit).delete(admin::delete_limit))
        .route("/admin/v1/limits/{id}/reset", post(admin::reset_limit))
        .route("/admin/v1/reports/usage", get(admin::usage_report))
        .route("/admin/v1/reports/chargeback", get(admin::chargeback))
        .route("/admin/v1/audit", get(admin::list_audit))
        .route("/admin/v1/audit/verify", get(admin::verify_audit))
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(ErrorCode::InternalError, "moat failed to handle this request").into_response()
}
