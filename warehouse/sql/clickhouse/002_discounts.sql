-- 002: what MRR needs. Price details and the item's own discounts on subscription items
-- (empty on rows written before this migration: `revline replay` fills them), and two new
-- tables, discounts and coupons.

ALTER TABLE subscription_items ADD COLUMN unit_amount_decimal Nullable(String) AFTER usage_type;
ALTER TABLE subscription_items ADD COLUMN billing_scheme Nullable(String) AFTER unit_amount_decimal;
ALTER TABLE subscription_items ADD COLUMN tiers_mode Nullable(String) AFTER billing_scheme;
ALTER TABLE subscription_items ADD COLUMN tiers Nullable(String) AFTER tiers_mode;
ALTER TABLE subscription_items ADD COLUMN transform_divide_by Nullable(Int64) AFTER tiers;
ALTER TABLE subscription_items ADD COLUMN transform_round Nullable(String) AFTER transform_divide_by;
ALTER TABLE subscription_items ADD COLUMN item_discount_ids String AFTER discount_ids;

CREATE TABLE IF NOT EXISTS discounts
(
    id                   String,
    account              Nullable(String),
    livemode             UInt8,
    coupon_id            Nullable(String),
    percent_off          Nullable(String),
    amount_off           Nullable(Int64),
    amount_off_currency  Nullable(String),
    duration             Nullable(String),
    duration_in_months   Nullable(Int64),
    applies_to_products  String,
    customer_id          Nullable(String),
    subscription_id      Nullable(String),
    subscription_item_id Nullable(String),
    invoice_id           Nullable(String),
    start_at             Nullable(DateTime),
    end_at               Nullable(DateTime),
    deleted_at           Nullable(DateTime),
    source_event_id      String,
    version              UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS coupons
(
    id                  String,
    account             Nullable(String),
    livemode            UInt8,
    percent_off         Nullable(String),
    amount_off          Nullable(Int64),
    currency            Nullable(String),
    duration            Nullable(String),
    duration_in_months  Nullable(Int64),
    applies_to_products String,
    deleted_at          Nullable(DateTime),
    source_event_id     String,
    version             UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;
