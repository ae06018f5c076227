//! `net` (0.1): the sockets of the calling resource's `serve` call, within the addresses
//! it declared, for plugins granted `net`; the work is [`crate::sys::net::NetHost`]'s.

use wasmtime::component::Linker;

use super::wit::net as wnet;
use super::wit::{Data, host};
use crate::plugin::serving::Event;
use crate::plugin::store::HostState;
use crate::sys::footprint::{Footprint, Protocol};
use crate::sys::net::{self, ErrorCode, NetError, check_bind, parse_address};

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wnet::add_to_linker::<HostState, Data>(linker, host)
}

fn net_err(e: NetError) -> wnet::Error {
    use ErrorCode as C;
    wnet::Error {
        code: match e.code {
            C::NotAllowed => wnet::ErrorCode::NotAllowed,
            C::AddressInUse => wnet::ErrorCode::AddressInUse,
            C::Invalid => wnet::ErrorCode::Invalid,
            C::Other => wnet::ErrorCode::Other,
        },
        message: e.message,
    }
}

type NetResult<T> = wasmtime::Result<Result<T, wnet::Error>>;

/// `address` parsed, if the footprint allows binding it with `protocol`.
fn allowed(
    fp: &Footprint,
    protocol: Protocol,
    address: &str,
) -> Result<std::net::SocketAddr, NetError> {
    let a = parse_address(address)?;
    check_bind(fp, protocol, a).map(|()| a)
}

/// Every `net` call first checks the capability and that a `serve` call is running.
macro_rules! net_call {
    ($self:ident, |$net:ident, $fp:ident| $body:expr) => {{
        match $self.serving() {
            Ok(($net, $fp)) => Ok($body.map_err(net_err)),
            Err(e) => Ok(Err(wnet::Error {
                code: wnet::ErrorCode::NotAllowed,
                message: e.to_string(),
            })),
        }
    }};
}

impl wnet::Host for HostState {
    async fn bind_udp(&mut self, address: String) -> NetResult<wnet::Socket> {
        net_call!(
            self,
            |net, fp| match allowed(&fp, Protocol::Udp, &address) {
                Ok(a) => net.bind_udp(a).await,
                Err(e) => Err(e),
            }
        )
    }
    async fn listen_tcp(&mut self, address: String) -> NetResult<wnet::Socket> {
        net_call!(
            self,
            |net, fp| match allowed(&fp, Protocol::Tcp, &address) {
                Ok(a) => net.listen_tcp(a).await,
                Err(e) => Err(e),
            }
        )
    }
    async fn local_address(&mut self, s: wnet::Socket) -> NetResult<String> {
        net_call!(self, |net, _fp| net.local_address(s).map(|a| a.to_string()))
    }
    async fn send_to(&mut self, s: wnet::Socket, peer: String, data: Vec<u8>) -> NetResult<()> {
        net_call!(self, |net, _fp| match parse_address(&peer) {
            Ok(p) => net.send_to(s, p, &data).await,
            Err(e) => Err(e),
        })
    }
    async fn write(&mut self, s: wnet::Socket, data: Vec<u8>) -> NetResult<u32> {
        net_call!(self, |net, _fp| net.write(s, &data))
    }
    async fn close(&mut self, s: wnet::Socket) -> wasmtime::Result<()> {
        if let Ok((net, _)) = self.serving() {
            net.close(s);
        }
        Ok(())
    }
    async fn wait(&mut self, timeout_ms: u32) -> wasmtime::Result<Vec<wnet::Event>> {
        let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
        Ok(self
            .serve_wait(timeout)
            .await
            .into_iter()
            .map(|e| match e {
                Event::Net(e) => match e {
                    net::Event::Datagram { socket, peer, data } => {
                        wnet::Event::Datagram(wnet::Datagram {
                            socket,
                            peer: peer.to_string(),
                            data,
                        })
                    }
                    net::Event::Accepted {
                        listener,
                        connection,
                        peer,
                    } => wnet::Event::Accepted(wnet::Accepted {
                        listener,
                        connection,
                        peer: peer.to_string(),
                    }),
                    net::Event::Received { connection, data } => {
                        wnet::Event::Received(wnet::Received { connection, data })
                    }
                    net::Event::Writable(s) => wnet::Event::Writable(s),
                    net::Event::Failed { socket, message } => {
                        wnet::Event::Failed(wnet::Failure { socket, message })
                    }
                },
                Event::Reconfigured(params) => wnet::Event::Reconfigured(params.to_string()),
            })
            .collect())
    }
}
