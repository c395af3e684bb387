//! Records revline appends to the event log itself: objects fetched from Stripe's API that
//! webhooks do not carry. Each is shaped like a snapshot event (so the log, the raw events
//! table and `revline replay` treat it like any other) with a type in revline's own
//! namespace and a deterministic id, so fetching twice stores it once and replay gives the
//! same facts without calling the API again.
//!
//! Today: one page of the balance transactions Stripe lists for a payout
//! (`GET /v1/balance_transactions?payout=po_…`): `type` [`PAYOUT_ITEMS`], `data.object` the
//! list exactly as the API answered (so exchange rates keep their exact text), and the payout
//! in `revline.payout`.

/// The `type` of a page of a payout's balance transactions.
pub const PAYOUT_ITEMS: &str = "revline.payout.balance_transactions";

/// The endpoint name fetched records carry in the log (webhooks carry their endpoint's).
pub const FETCHED_ENDPOINT: &str = "revline-fetch";

/// The API version fetched records are decoded with (the version revline's API client asks
/// for is fixed, so the objects always have this shape).
pub const FETCH_API_VERSION: &str = "2025-05-28.basil";

/// The id of page `page` (from 0) of `payout`'s balance transactions.
pub fn payout_items_id(payout: &str, page: u32) -> String {
    format!("rvl_{payout}_bt_{page}")
}

/// The event body of one page: `list` is the API's answer, verbatim (a JSON object).
pub fn payout_items_event(
    payout: &str,
    page: u32,
    account: Option<&str>,
    livemode: bool,
    fetched_at: i64,
    list: &str,
) -> Vec<u8> {
    let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
    format!(
        r#"{{"id":{id},"object":"event","type":{kind},"api_version":{version},"created":{fetched_at},"livemode":{livemode},"account":{account},"revline":{{"payout":{payout},"page":{page}}},"data":{{"object":{list}}}}}"#,
        id = quote(&payout_items_id(payout, page)),
        kind = quote(PAYOUT_ITEMS),
        version = quote(FETCH_API_VERSION),
        account = account.map_or("null".to_owned(), quote),
        payout = quote(payout),
        list = list.trim(),
    )
    .into_bytes()
}
