//! Which answer a request gets: the profile endpoint, the page, or a 4xx
//! or 5xx with a one-line reason; and the bound on windows waiting at once.

use super::query::{self, Pull};
use super::{page, Source, MAX_WINDOWS, PAGE_PATH, PROFILE_PATH};
use crate::format::Format;
use crate::profile::{Event, Profile};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The page's window when it asks for none, in seconds.
const PAGE_SECONDS: u64 = 10;

/// A response with its whole body.
pub(crate) type Answer = Response<Full<Bytes>>;

/// What the server answers from.
pub(crate) struct Routes {
    source: Arc<dyn Source>,
    /// The event of pulls that name none (`THESEUS_EVENT`).
    event: Event,
    /// One permit per windowed pull (or page) waiting.
    windows: Arc<Semaphore>,
}

impl Routes {
    pub(crate) fn new(source: Arc<dyn Source>, event: Event) -> Routes {
        Routes {
            source,
            event,
            windows: Arc::new(Semaphore::new(MAX_WINDOWS)),
        }
    }

    /// The answer to `request`; never fails, never panics on any input.
    pub(crate) async fn answer<B>(&self, request: Request<B>) -> Answer {
        let path = request.uri().path();
        let known = path == PROFILE_PATH || path == PAGE_PATH || path == "/debug/theseus";
        if !known {
            return refusal(
                StatusCode::NOT_FOUND,
                &format!("no such path: {path}; theseus serves {PROFILE_PATH} and {PAGE_PATH}"),
            );
        }
        if request.method() != Method::GET {
            let mut answer = refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("method {} is not allowed; use GET", request.method()),
            );
            answer
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET"));
            return answer;
        }
        let query = request.uri().query();
        let result = if path == PROFILE_PATH {
            self.profile(query).await
        } else {
            self.page(query).await
        };
        result.unwrap_or_else(|(status, reason)| refusal(status, &reason))
    }

    /// `/debug/pprof/theseus`: the profile asked for, rendered.
    async fn profile(&self, query: Option<&str>) -> Result<Answer, (StatusCode, String)> {
        let defaults = Pull {
            seconds: None,
            format: Format::Pprof,
            event: self.event,
        };
        let pull = query::parse(query, defaults, &["seconds", "format", "event"])
            .map_err(|reason| (StatusCode::BAD_REQUEST, reason))?;
        let profile = match pull.seconds {
            Some(seconds) => self.window(seconds).await?,
            None => self.so_far().await?,
        };
        let (format, event) = (pull.format, pull.event);
        let bytes = blocking(move || render(&profile, format, event)).await??;
        Ok(profile_answer(bytes, format))
    }

    /// `/debug/theseus/`: the page, after its window.
    async fn page(&self, query: Option<&str>) -> Result<Answer, (StatusCode, String)> {
        let defaults = Pull {
            seconds: Some(PAGE_SECONDS),
            format: Format::FlameGraph,
            event: self.event,
        };
        let pull = query::parse(query, defaults, &["seconds", "event"])
            .map_err(|reason| (StatusCode::BAD_REQUEST, reason))?;
        let seconds = pull.seconds.unwrap_or(PAGE_SECONDS);
        let window = self.window(seconds).await?;
        let so_far = self.so_far().await?;
        let event = pull.event;
        let html = blocking(move || page::render(&so_far, &window, seconds, event))
            .await?
            .map_err(|e| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("rendering failed: {e}"),
                )
            })?;
        let mut answer = Response::new(Full::new(Bytes::from(html)));
        set(&mut answer, CONTENT_TYPE, "text/html; charset=utf-8");
        set(&mut answer, CACHE_CONTROL, "no-store");
        Ok(answer)
    }

    /// The profile of the next `seconds`, if a window is free.
    async fn window(&self, seconds: u64) -> Result<Profile, (StatusCode, String)> {
        let _permit = self.windows.clone().try_acquire_owned().map_err(|_| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{MAX_WINDOWS} windowed pulls are already waiting, the most at once; \
                     try again when one ends, or pull the run so far (no seconds=)"
                ),
            )
        })?;
        let source = self.source.clone();
        let window = blocking(move || source.open_window())
            .await?
            .ok_or_else(ended)?;
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        blocking(move || window.close()).await
    }

    /// The whole run so far.
    async fn so_far(&self) -> Result<Profile, (StatusCode, String)> {
        let source = self.source.clone();
        blocking(move || source.so_far()).await?.ok_or_else(ended)
    }
}

/// The reason given once the session has ended (the program is exiting).
fn ended() -> (StatusCode, String) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the profiling session has ended".to_string(),
    )
}

/// Runs `work` on one of the server's blocking threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, (StatusCode, String)> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering failed: {e}"),
        )
    })
}

/// `profile` in `format`, `event` first.
fn render(
    profile: &Profile,
    format: Format,
    event: Event,
) -> Result<Vec<u8>, (StatusCode, String)> {
    let mut bytes = Vec::new();
    profile.write(format, event, &mut bytes).map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering failed: {e}"),
        )
    })?;
    Ok(bytes)
}

/// A profile's answer, typed for its format and named as its file would be.
fn profile_answer(bytes: Vec<u8>, format: Format) -> Answer {
    let (content_type, file) = match format {
        Format::Pprof => ("application/octet-stream", "theseus.pb.gz"),
        Format::Callgrind => ("text/plain; charset=utf-8", "callgrind.theseus"),
        Format::Folded => ("text/plain; charset=utf-8", "theseus.folded"),
        Format::FlameGraph => ("image/svg+xml", "theseus.svg"),
    };
    let mut answer = Response::new(Full::new(Bytes::from(bytes)));
    set(&mut answer, CONTENT_TYPE, content_type);
    set(&mut answer, CACHE_CONTROL, "no-store");
    let disposition = format!("inline; filename=\"{file}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        answer.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    answer
}

fn set(answer: &mut Answer, name: hyper::header::HeaderName, value: &'static str) {
    answer
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

/// A refusal: `status` and its reason, one line of plain text.
fn refusal(status: StatusCode, reason: &str) -> Answer {
    let line = format!("{}\n", reason.replace(['\r', '\n'], " "));
    let mut answer = Response::new(Full::new(Bytes::from(line)));
    *answer.status_mut() = status;
    set(&mut answer, CONTENT_TYPE, "text/plain; charset=utf-8");
    answer
}
