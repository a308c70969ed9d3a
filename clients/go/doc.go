// Package rota is a client for Rota, the durable multi-tenant task queue server: a typed
// client for its whole HTTP API (tasks, workflows, queues, dead letters, schedules, webhooks,
// inbound webhooks, events, workers, administration and the audit log) and a worker runtime that claims tasks in batches, runs
// them under a concurrency bound, heartbeats them and reports their outcomes in batches.
//
// Every call takes a context.Context. Errors the server answers are *Error values carrying its
// status, code and message; reads are retried on transport failures, writes never.
// WithClientCredentials authenticates with OAuth 2.0 access tokens the client fetches and
// renews itself, instead of sending an API key's token.
//
//	client, err := rota.New() // ROTA_URL and ROTA_TOKEN
//	task, err := client.Enqueue(ctx, "emails", rota.TaskInput{Kind: "email.send", Payload: payload})
package rota
