//! Connecting to the Docker engine: the local socket (or `DOCKER_HOST`), with the API
//! version negotiated down to what the engine speaks (Debian's engine speaks 1.41).

use bollard::Docker;

use crate::error::{ContainerError, Result, socket_description};

/// Connects to the engine and negotiates the API version.
///
/// # Errors
/// [`ContainerError::EngineUnavailable`] when the socket is missing or does not answer.
pub async fn connect() -> Result<Docker> {
    let unavailable =
        |reason: String| ContainerError::EngineUnavailable { socket: socket_description(), reason };
    let docker = Docker::connect_with_local_defaults().map_err(|e| unavailable(e.to_string()))?;
    let docker = docker.negotiate_version().await.map_err(|e| unavailable(e.to_string()))?;
    // negotiate_version falls back silently; a ping proves the engine answers.
    docker.ping().await.map_err(|e| unavailable(e.to_string()))?;
    Ok(docker)
}
