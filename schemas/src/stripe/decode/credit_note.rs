//! Credit notes and their lines.
//!
//! A line's tax moved from `tax_amounts[]` (with an `inclusive` flag) to `taxes[]` (with a
//! `tax_behavior`) in basil; a line's amount excluding tax is derived when Stripe does not
//! send it.

use super::tree::Value;

use super::fields::{bool_at, i64_at, id_at, list_at, pick, str_at, Fields};
use super::{Decoded, Scope};
use crate::stripe::{CreditNote, CreditNoteLine, Generation};

pub(super) fn credit_note(o: &Value<'_>, scope: &Scope<'_>) -> Decoded<CreditNote> {
    let f = Fields::new(o, "credit_note");
    let lines = list_at(o, &["lines"])
        .iter()
        .enumerate()
        .map(|(i, line)| {
            credit_note_line(&f.child(line, format!("lines.data[{i}]")), scope.generation)
        })
        .collect::<Decoded<Vec<_>>>()?;
    Ok(CreditNote {
        id: f.id()?,
        number: str_at(o, &["number"]),
        invoice: id_at(o, &["invoice"]),
        customer: id_at(o, &["customer"]),
        currency: f.currency()?,
        amount: f.req_unsigned(&["amount"])?,
        subtotal: f.money_or_zero(&["subtotal"])?,
        total: f.money_or_zero(&["total"])?,
        total_excluding_tax: f.money(&["total_excluding_tax"])?,
        discount_amount: f.sum(&["discount_amounts"], |_| true)?.unwrap_or(0),
        pre_payment_amount: f.unsigned_or_zero(&["pre_payment_amount"])?,
        post_payment_amount: f.unsigned_or_zero(&["post_payment_amount"])?,
        out_of_band_amount: f.unsigned_or_zero(&["out_of_band_amount"])?,
        status: str_at(o, &["status"]).unwrap_or_default(),
        kind: str_at(o, &["type"]),
        reason: str_at(o, &["reason"]),
        created: f.created(scope),
        voided_at: i64_at(o, &["voided_at"]),
        lines,
    })
}

fn credit_note_line(f: &Fields<'_>, g: Generation) -> Decoded<CreditNoteLine> {
    let line = f.v;
    let amount = f.money_or_zero(&["amount"])?;
    let tax_amount = pick(
        g,
        f.sum(&["tax_amounts"], |_| true)?,
        f.sum(&["taxes"], |_| true)?,
    )
    .unwrap_or(0);
    // A line's `amount` already excludes exclusive tax; only inclusive tax is inside it.
    let inclusive_tax = pick(
        g,
        f.sum(&["tax_amounts"], |t| {
            bool_at(t, &["inclusive"]) == Some(true)
        })?,
        f.sum(&["taxes"], |t| {
            str_at(t, &["tax_behavior"]).as_deref() == Some("inclusive")
        })?,
    )
    .unwrap_or(0);
    Ok(CreditNoteLine {
        id: f.id()?,
        amount,
        amount_excluding_tax: f
            .money(&["amount_excluding_tax"])?
            .unwrap_or(amount.saturating_sub(inclusive_tax)),
        quantity: i64_at(line, &["quantity"]),
        invoice_line_item: id_at(line, &["invoice_line_item"]),
        tax_amount,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{decode_object, ACACIA, BASIL};
    use super::*;

    #[test]
    fn credit_note_lines_sum_acacia_tax_amounts_and_basil_taxes() {
        let acacia = expect!(
            decode_object(
                ACACIA,
                "credit_note.created",
                r#"{"id":"cn_old","object":"credit_note","number":"EXMPL-0002-CN-01","invoice":"in_1",
                    "customer":{"id":"cus_1"},"currency":"usd","amount":1100,"subtotal":1000,"total":1100,
                    "total_excluding_tax":1000,"discount_amounts":[{"amount":0,"discount":"di_1"}],
                    "pre_payment_amount":0,"post_payment_amount":1100,"out_of_band_amount":0,"status":"issued",
                    "type":"post_payment","reason":"product_unsatisfactory","created":1770000000,"voided_at":null,
                    "tax_amounts":[{"amount":100,"inclusive":false}],
                    "lines":{"object":"list","data":[
                      {"id":"cnli_1","amount":1000,"quantity":1,"invoice_line_item":"il_1",
                       "tax_amounts":[{"amount":60,"inclusive":false},{"amount":40,"inclusive":false}]},
                      {"id":"cnli_2","amount":500,"amount_excluding_tax":450,"tax_amounts":[]}]}}"#
            ),
            CreditNote
        );
        assert_eq!(acacia.number.as_deref(), Some("EXMPL-0002-CN-01"));
        assert_eq!(
            (acacia.invoice.as_deref(), acacia.customer.as_deref()),
            (Some("in_1"), Some("cus_1"))
        );
        assert_eq!(
            (
                acacia.amount,
                acacia.subtotal,
                acacia.total,
                acacia.total_excluding_tax
            ),
            (1100, 1000, 1100, Some(1000))
        );
        assert_eq!(
            (
                acacia.pre_payment_amount,
                acacia.post_payment_amount,
                acacia.out_of_band_amount
            ),
            (0, 1100, 0)
        );
        assert_eq!(
            (acacia.status.as_str(), acacia.kind.as_deref()),
            ("issued", Some("post_payment"))
        );
        assert_eq!(acacia.reason.as_deref(), Some("product_unsatisfactory"));
        assert_eq!(acacia.created, 1770000000);
        assert_eq!(
            acacia.lines,
            vec![
                CreditNoteLine {
                    id: "cnli_1".into(),
                    amount: 1000,
                    // The 100 of tax is exclusive: `amount` never contained it.
                    amount_excluding_tax: 1000,
                    quantity: Some(1),
                    invoice_line_item: Some("il_1".into()),
                    tax_amount: 100,
                },
                CreditNoteLine {
                    id: "cnli_2".into(),
                    amount: 500,
                    amount_excluding_tax: 450,
                    quantity: None,
                    invoice_line_item: None,
                    tax_amount: 0,
                },
            ]
        );

        let basil = expect!(
            decode_object(
                BASIL,
                "credit_note.voided",
                r#"{"id":"cn_new","object":"credit_note","invoice":"in_2","currency":"EUR","amount":1190,
                    "subtotal":1000,"total":1190,"discount_amounts":[{"amount":100},{"amount":20}],
                    "pre_payment_amount":1190,"status":"void","type":"pre_payment","voided_at":1770100000,
                    "total_taxes":[{"amount":190,"tax_behavior":"exclusive"}],
                    "lines":{"data":[{"id":"cnli_3","amount":1190,"invoice_line_item":"il_2",
                      "taxes":[{"amount":190,"tax_behavior":"inclusive","type":"tax_rate_details"}]}]}}"#
            ),
            CreditNote
        );
        assert_eq!(basil.currency, "eur");
        assert_eq!(basil.discount_amount, 120);
        assert_eq!(basil.total_excluding_tax, None);
        assert_eq!(
            (basil.status.as_str(), basil.voided_at),
            ("void", Some(1770100000))
        );
        assert_eq!(basil.created, 1769907602);
        assert_eq!(
            (
                basil.lines[0].tax_amount,
                basil.lines[0].amount_excluding_tax
            ),
            (190, 1000)
        );
    }
}
