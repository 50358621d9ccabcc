//! A TCP proxy that can cut the database away: [`Proxy::cut`] drops every open
//! connection and refuses new ones (accepts and closes them at once) until
//! [`Proxy::restore`]. The shared server keeps running for everybody else.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; stops accepting when dropped.
#[derive(Debug)]
pub struct Proxy {
    /// The address to connect to instead of the upstream.
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(upstream: String) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy")?;
        let addr = listener.local_addr()?;
        let (up, _) = watch::channel(true);
        let rx = up.subscribe();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*rx.borrow() {
                    drop(client); // refused: the database is "down"
                    continue;
                }
                let mut rx = rx.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.wait_for(|up| !*up) => {} // cut: both sockets dropped
                    }
                });
            }
        });
        Ok(Self { addr, up, task })
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Accepts and forwards again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// The `host:port` of a `postgres://` or `mysql://` URL (port 5432 or 3306 when absent).
pub fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return None;
    }
    let default_port = match crate::db::Backend::of(url).ok()? {
        crate::db::Backend::Postgres => 5432,
        crate::db::Backend::Mysql => 3306,
    };
    Some(if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    })
}

/// `url` pointing at `addr` instead of its own host and port. A MySQL URL also gets
/// `prefer_socket=false`: the driver (`mysql_async`) otherwise moves a connection to
/// `127.0.0.1` onto the server's Unix socket, around the proxy.
pub fn via(url: &str, addr: SocketAddr) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let creds = authority.rsplit_once('@').map(|(c, _)| c);
    let mut out = match creds {
        Some(c) => format!("{scheme}://{c}@{addr}{tail}"),
        None => format!("{scheme}://{addr}{tail}"),
    };
    if crate::db::Backend::of(url).ok()? == crate::db::Backend::Mysql {
        out.push(if tail.contains('?') { '&' } else { '?' });
        out.push_str("prefer_socket=false");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = "postgres://postgres@127.0.0.1:5432/db?x=1";
        assert_eq!(host_port(u).as_deref(), Some("127.0.0.1:5432"));
        assert_eq!(
            host_port("postgres://u:p@db.example/x").as_deref(),
            Some("db.example:5432")
        );
        assert_eq!(
            host_port("mysql://root@db.example/x").as_deref(),
            Some("db.example:3306")
        );
        let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        assert_eq!(
            via("mysql://root@127.0.0.1:3306/db", a).as_deref(),
            Some("mysql://root@127.0.0.1:7000/db?prefer_socket=false")
        );
        assert_eq!(
            via("mysql://root@h/db?pool_max=4", a).as_deref(),
            Some("mysql://root@127.0.0.1:7000/db?pool_max=4&prefer_socket=false")
        );
        assert_eq!(
            via(u, a).as_deref(),
            Some("postgres://postgres@127.0.0.1:7000/db?x=1")
        );
        assert_eq!(
            via("postgres://h/db", a).as_deref(),
            Some("postgres://127.0.0.1:7000/db")
        );
    }
}
