// The webhook handler Stripe's documentation shows, made durable the usual way: Express,
// the official `stripe` package's webhooks.constructEvent over the raw body, then a Kafka
// produce with kafkajs and acks=all before answering 200. One Node process.
//
// usage: PORT=… KAFKA_BROKERS=host:port KAFKA_TOPIC=… STRIPE_WEBHOOK_SECRET=… node server.js
//
// kafkajs' idempotent producer fails against Tansu, so this is plain acks=all (as most
// handlers run it anyway); each request is one produce call, as written in the guides.
"use strict";
const express = require("express");
const Stripe = require("stripe");
const { Kafka, logLevel } = require("kafkajs");

const stripe = Stripe("sk_test_unused"); // constructEvent never calls the API
const secret = process.env.STRIPE_WEBHOOK_SECRET;
const topic = process.env.KAFKA_TOPIC;
const kafka = new Kafka({
  clientId: "peer",
  brokers: process.env.KAFKA_BROKERS.split(","),
  logLevel: logLevel.ERROR,
});
const producer = kafka.producer({ allowAutoTopicCreation: false });

const app = express();
app.post("/webhooks/stripe", express.raw({ type: "application/json", limit: "1mb" }), async (req, res) => {
  let event;
  try {
    event = stripe.webhooks.constructEvent(req.body, req.headers["stripe-signature"], secret);
  } catch (err) {
    return res.status(400).json({ error: "signature", message: err.message });
  }
  try {
    await producer.send({ topic, acks: -1, messages: [{ key: event.id, value: req.body }] });
  } catch (err) {
    return res.status(503).json({ error: "kafka", message: err.message });
  }
  res.json({ received: true, id: event.id });
});
app.get("/readyz", (_req, res) => res.send("ready"));

producer.connect().then(() => {
  app.listen(Number(process.env.PORT), "127.0.0.1", () => console.error("peer listening"));
});
