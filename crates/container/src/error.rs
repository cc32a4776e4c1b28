//! Errors of the container backend. Each names the container, volume or image involved.

use lifeboat_core::Error as CoreError;

/// What can go wrong talking to the Docker engine, capturing or restoring a container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerError {
    /// The engine's socket is missing or does not answer.
    #[error("the Docker engine at {socket} is not reachable: {reason}")]
    EngineUnavailable {
        /// The socket or host tried.
        socket: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// No container has this name or id.
    #[error("container {container} does not exist")]
    NoSuchContainer {
        /// The name or id given.
        container: String,
    },
    /// A snapshot's metadata is not a container capture lifeboat can read.
    #[error("snapshot metadata is not a container capture: {reason}")]
    BadMetadata {
        /// What is wrong.
        reason: String,
    },
    /// A label selector is not `KEY=VALUE` or `KEY`.
    #[error("invalid label selector {selector:?}")]
    BadSelector {
        /// The selector given.
        selector: String,
    },
    /// The engine refused or failed a request.
    #[error("Docker engine: {action} {subject}: {message}")]
    Engine {
        /// What was being done ("exporting", "creating container").
        action: &'static str,
        /// The container, image or volume.
        subject: String,
        /// The engine's message.
        message: String,
    },
    /// A restored container did not stay running (or healthy) for the settling period.
    #[error("restored container {container} did not come up: {reason}")]
    NotRunning {
        /// The container.
        container: String,
        /// Its state, exit code or health.
        reason: String,
    },
    /// Restored data does not match the snapshot.
    #[error("{section} of the snapshot does not match: {reason}")]
    Mismatch {
        /// The section (filesystem or a volume).
        section: String,
        /// What differed.
        reason: String,
    },
}

impl ContainerError {
    /// Wraps a bollard error from `action` on `subject`, recognising the common cases.
    pub(crate) fn engine(
        action: &'static str,
        subject: impl Into<String>,
        error: bollard::errors::Error,
    ) -> Self {
        use bollard::errors::Error as B;
        let subject = subject.into();
        match error {
            B::DockerResponseServerError { status_code: 404, message }
                if message.contains("No such container") =>
            {
                ContainerError::NoSuchContainer { container: subject }
            }
            B::DockerResponseServerError { message, .. } => {
                ContainerError::Engine { action, subject, message }
            }
            B::SocketNotFoundError(socket) => {
                ContainerError::EngineUnavailable { socket, reason: "socket not found".into() }
            }
            other if is_connection_error(&other) => ContainerError::EngineUnavailable {
                socket: socket_description(),
                reason: other.to_string(),
            },
            other => ContainerError::Engine { action, subject, message: other.to_string() },
        }
    }
}

/// Where the engine is expected, for messages.
pub(crate) fn socket_description() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn is_connection_error(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as B;
    matches!(e, B::HyperLegacyError { .. } | B::IOError { .. } | B::RequestTimeoutError)
}

impl From<ContainerError> for CoreError {
    fn from(e: ContainerError) -> Self {
        let hint = match &e {
            ContainerError::EngineUnavailable { .. } => {
                "start the Docker engine (`systemctl start docker`, or `dockerd &`), or point \
                 DOCKER_HOST at its socket"
            }
            ContainerError::NoSuchContainer { .. } => {
                "check the name with `docker ps -a`; restore a deleted container with \
                 `lifeboat restore SNAPSHOT --to container:NAME`"
            }
            ContainerError::BadMetadata { .. } => {
                "this snapshot was not taken by `lifeboat backup container`"
            }
            ContainerError::BadSelector { .. } => "give a label as KEY=VALUE or KEY",
            ContainerError::Engine { .. } => {
                "see the engine's message; `docker info` shows its state"
            }
            ContainerError::NotRunning { .. } => {
                "the original container was put back; check the restored configuration with \
                 `lifeboat cat`, or restore another snapshot"
            }
            ContainerError::Mismatch { .. } => {
                "run `lifeboat verify --read-data`; restore from another snapshot"
            }
        };
        CoreError::native(lifeboat_core::Kind::CONTAINER, e, hint)
    }
}

/// Shorthand for the backend's results.
pub type Result<T, E = ContainerError> = std::result::Result<T, E>;
