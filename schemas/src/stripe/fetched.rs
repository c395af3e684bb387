//! Records revline appends to the event log itself: objects fetched from Stripe's API that
//! webhooks do not carry. Each is shaped like a snapshot event (so the log, the raw events
//! table and `revline replay` treat it like any other) with a type in revline's own
//! namespace and a deterministic id, so fetching twice stores it once and replay gives the
//! same facts without calling the API again.
//!
//! - One page of the balance transactions Stripe lists for a payout
//!   (`GET /v1/balance_transactions?payout=po_…`): `type` [`PAYOUT_ITEMS`], `data.object` the
//!   list exactly as the API answered (so exchange rates keep their exact text), and the
//!   payout in `revline.payout`.
//! - One page of the lines of an invoice whose webhook carried only the first page
//!   (`GET /v1/invoices/{id}/lines`): `type` [`INVOICE_LINES`], `data.object` the list as
//!   answered, and in `revline` what the lines' rows need from the invoice (its id,
//!   customer, subscription, currency and finalization).
//! - A balance transaction a charge or refund names (`GET /v1/balance_transactions/{id}`):
//!   `type` [`BALANCE_TRANSACTION`], `data.object` the object as answered.
//! - An object fetched again (`GET /v1/charges/{id}`, …) because two of its snapshots from
//!   the same second tie on everything revline can order them by: `type` [`REFETCHED`],
//!   `data.object` the object as answered, `created` the time of the fetch, so the object
//!   as it is now wins.

/// The `type` of a page of a payout's balance transactions.
pub const PAYOUT_ITEMS: &str = "revline.payout.balance_transactions";

/// The `type` of a balance transaction fetched for a charge or refund.
pub const BALANCE_TRANSACTION: &str = "revline.balance_transaction";

/// The event body of a fetched balance transaction: `object_json` is the API's answer.
pub fn balance_transaction_event(
    id: &str,
    account: Option<&str>,
    livemode: bool,
    fetched_at: i64,
    object_json: &str,
) -> Vec<u8> {
    fetched_event(
        &format!("rvl_bt_{id}"),
        BALANCE_TRANSACTION,
        account,
        livemode,
        fetched_at,
        None,
        object_json,
    )
}

/// The `type` of an object fetched again to settle a same-second tie.
pub const REFETCHED: &str = "revline.refetched";

/// The `type` of a page of an invoice's lines.
pub const INVOICE_LINES: &str = "revline.invoice.lines";

/// The endpoint name fetched records carry in the log (webhooks carry their endpoint's).
pub const FETCHED_ENDPOINT: &str = "revline-fetch";

/// The API version fetched records are decoded with (the version revline's API client asks
/// for is fixed, so the objects always have this shape).
pub const FETCH_API_VERSION: &str = "2025-05-28.basil";

/// The id of page `page` (from 0) of `payout`'s balance transactions.
pub fn payout_items_id(payout: &str, page: u32) -> String {
    format!("rvl_{payout}_bt_{page}")
}

/// A JSON string.
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The body of a fetched record: an event of `kind` with id `id`, created at the fetch,
/// carrying `object` (the API's answer, verbatim) and, when given, a `revline` object of
/// what the record needs besides (JSON text).
fn fetched_event(
    id: &str,
    kind: &str,
    account: Option<&str>,
    livemode: bool,
    fetched_at: i64,
    revline: Option<String>,
    object: &str,
) -> Vec<u8> {
    let revline = revline.map_or(String::new(), |r| format!(r#","revline":{r}"#));
    format!(
        r#"{{"id":{id},"object":"event","type":{kind},"api_version":{version},"created":{fetched_at},"livemode":{livemode},"account":{account}{revline},"data":{{"object":{object}}}}}"#,
        id = quote(id),
        kind = quote(kind),
        version = quote(FETCH_API_VERSION),
        account = account.map_or("null".to_owned(), quote),
        object = object.trim(),
    )
    .into_bytes()
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
    let revline = format!(r#"{{"payout":{},"page":{page}}}"#, quote(payout));
    fetched_event(
        &payout_items_id(payout, page),
        PAYOUT_ITEMS,
        account,
        livemode,
        fetched_at,
        Some(revline),
        list,
    )
}

/// What the rows of an invoice's fetched lines need from the invoice itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceContext {
    pub invoice: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    pub currency: String,
    pub finalized_at: Option<i64>,
}

/// The id of page `page` (from 0) of `invoice`'s lines.
pub fn invoice_lines_id(invoice: &str, page: u32) -> String {
    format!("rvl_{invoice}_lines_{page}")
}

/// The event body of one page of an invoice's lines: `list` is the API's answer, verbatim.
pub fn invoice_lines_event(
    invoice: &InvoiceContext,
    page: u32,
    account: Option<&str>,
    livemode: bool,
    fetched_at: i64,
    list: &str,
) -> Vec<u8> {
    let opt = |s: &Option<String>| s.as_deref().map_or("null".to_owned(), quote);
    let revline = format!(
        r#"{{"invoice":{},"customer":{},"subscription":{},"currency":{},"finalized_at":{},"page":{page}}}"#,
        quote(&invoice.invoice),
        opt(&invoice.customer),
        opt(&invoice.subscription),
        quote(&invoice.currency),
        invoice
            .finalized_at
            .map_or("null".to_owned(), |t| t.to_string()),
    );
    fetched_event(
        &invoice_lines_id(&invoice.invoice, page),
        INVOICE_LINES,
        account,
        livemode,
        fetched_at,
        Some(revline),
        list,
    )
}

/// The id of the refetch of `object` settling its tie of second `created`.
pub fn refetch_id(object: &str, created: u32) -> String {
    format!("rvl_refetch_{object}_{created}")
}

/// The event body of an object fetched again: `object_json` is the API's answer, verbatim.
pub fn refetched_event(
    object: &str,
    created: u32,
    account: Option<&str>,
    livemode: bool,
    fetched_at: i64,
    object_json: &str,
) -> Vec<u8> {
    fetched_event(
        &refetch_id(object, created),
        REFETCHED,
        account,
        livemode,
        fetched_at,
        None,
        object_json,
    )
}
