use super::*;

#[test]
fn the_backlog_is_somaxconn_or_the_default() {
    assert_eq!(parse_backlog(Some("4096\n")), 4096);
    assert_eq!(parse_backlog(Some("65535")), 65535);
    assert_eq!(parse_backlog(Some("128")), 128);
    assert_eq!(parse_backlog(Some("4294967295")), i32::MAX as u32);
    for unusable in [None, Some(""), Some("0"), Some("-1"), Some("lots")] {
        assert_eq!(parse_backlog(unusable), DEFAULT_BACKLOG, "{unusable:?}");
    }
}

#[tokio::test]
async fn bind_tcp_listens() {
    let l = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let (_c, accepted) = tokio::join!(TcpStream::connect(addr), l.accept());
    assert!(accepted.is_ok());
}
