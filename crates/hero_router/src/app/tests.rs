use super::*;

#[tokio::test]
async fn a_whole_body_has_its_length_and_a_stream_has_none() {
    let body = full("hello");
    assert_eq!(exact_len(&body), Some(5));
    assert_eq!(collect(body, 5).await.as_deref(), Some(&b"hello"[..]));

    let chunks = futures_util::stream::iter([Bytes::from("a"), Bytes::from("bc")]);
    let body = stream(chunks);
    assert_eq!(exact_len(&body), None);
    assert_eq!(collect(body, 3).await.as_deref(), Some(&b"abc"[..]));
}

#[tokio::test]
async fn a_body_past_the_limit_is_not_collected() {
    assert_eq!(collect(full("hello"), 4).await, None);
    let chunks = futures_util::stream::iter([Bytes::from("ab"), Bytes::from("cde")]);
    assert_eq!(collect(stream(chunks), 4).await, None);
}

#[test]
fn an_answer_says_its_status_and_type() {
    let a = answer(StatusCode::NOT_FOUND, "text/plain", "no");
    assert_eq!(a.status(), StatusCode::NOT_FOUND);
    assert_eq!(a.headers()[header::CONTENT_TYPE], "text/plain");
    let j = json(&serde_json::json!({"a": 1}));
    assert_eq!(j.status(), StatusCode::OK);
    assert_eq!(j.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(exact_len(j.body()), Some(7));
}
