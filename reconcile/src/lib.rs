//! `reconcile`: consumes the event log, matches events to invoices and subscriptions, and
//! writes revenue facts to the warehouse.
