//! The hickory resolver against a loopback DNS server, and a delivery that uses it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use crate::support::*;
use haraka_outbound::{
    Event, HickoryResolver, LookupError, MxRecord, MxResolver, Outbound, OutboundConfig,
};
use haraka_plugin_api::OutboundQueue;
use haraka_queue::{QueueDir, QueueStore};
use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, MX};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

/// Answers: `mx.test` MX 10 `mail.mx.test` (A 127.0.30.2), `null.test` null MX,
/// `servfail.test` SERVFAIL, `nxdomain.test` NXDOMAIN, everything else empty.
async fn dns_server() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(query) = q.queries.first().cloned() else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.metadata.recursion_available = true;
            r.add_query(query.clone());
            let name = query.name.to_ascii().to_ascii_lowercase();
            let rec = |data: RData| Record::from_rdata(query.name.clone(), 60, data);
            match (name.as_str(), query.query_type) {
                ("mx.test.", RecordType::MX) => {
                    let exchange = Name::from_ascii("mail.mx.test.").unwrap();
                    r.add_answer(rec(RData::MX(MX::new(10, exchange))));
                }
                ("null.test.", RecordType::MX) => {
                    r.add_answer(rec(RData::MX(MX::new(0, Name::root()))));
                }
                ("mail.mx.test.", RecordType::A) => {
                    r.add_answer(rec(RData::A(A(Ipv4Addr::new(127, 0, 30, 2)))));
                }
                ("servfail.test.", _) => r.metadata.response_code = ResponseCode::ServFail,
                ("nxdomain.test.", _) => r.metadata.response_code = ResponseCode::NXDomain,
                _ => {}
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), peer).await;
        }
    });
    addr
}

#[tokio::test]
async fn hickory_answers_map_to_lookups() {
    let server = dns_server().await;
    let r = HickoryResolver::with_nameservers(&[server]).unwrap();
    assert_eq!(
        r.mx("mx.test").await.unwrap(),
        vec![MxRecord {
            preference: 10,
            exchange: "mail.mx.test".into()
        }]
    );
    assert_eq!(
        r.mx("null.test").await.unwrap(),
        vec![MxRecord {
            preference: 0,
            exchange: String::new()
        }]
    );
    assert_eq!(
        r.ipv4("mail.mx.test").await.unwrap(),
        vec![Ipv4Addr::new(127, 0, 30, 2)]
    );
    assert_eq!(r.mx("nxdomain.test").await, Err(LookupError::NotFound));
    assert_eq!(r.mx("empty.test").await, Err(LookupError::NotFound));
    assert!(matches!(
        r.mx("servfail.test").await,
        Err(LookupError::Temporary(_))
    ));
}

#[tokio::test]
async fn delivery_through_the_configured_nameserver() {
    let server = dns_server().await;
    let mx = FakeMx::plain("127.0.30.2:0").await;
    let mut cfg: OutboundConfig = config(mx.port());
    cfg.nameservers = vec![server];
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(QueueDir::open(dir.path()).unwrap());
    let out = Outbound::builder(cfg, store as Arc<dyn QueueStore>)
        .build()
        .unwrap();
    let mut events = out.subscribe();
    out.start().await.unwrap();
    out.enqueue(&conn(Some("u@sender.test"), &["x@mx.test"], "s"))
        .await;
    let got = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(Event::Delivered { host, .. }) = events.recv().await {
                return host;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, "mail.mx.test");
    assert_eq!(mx.rec.snapshot().messages().len(), 1);
}
