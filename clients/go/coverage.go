package rota

import (
	"reflect"
	"sort"
	"strings"
)

// Operation is one operation of the server's HTTP API, as its OpenAPI document names it.
type Operation struct {
	Method string
	Path   string
}

// operations are the server's operations this library implements, each by the method named
// beside it. GET /v1/events/ws (the WebSocket form of the event stream) is known and
// deliberately left to Follow's Server-Sent Events, which resume the same way with only the
// standard library. POST /hooks/{id} is known and deliberately not wrapped: it is a provider's
// request to an inbound webhook (its body JSON or text), proven by its signature rather than an
// API token, so it is not the API client's to send. GET /.well-known/jwks.json is known and
// deliberately not wrapped either: it is the public keys access tokens are signed with, for a
// service that checks them itself; this client only sends its tokens to the server.
var operations = []Operation{
	{"GET", "/healthz"},                                       // Healthz
	{"POST", "/oauth/token"},                                  // FetchToken, WithClientCredentials
	{"GET", "/.well-known/jwks.json"},                         // (signing keys for other services; not wrapped)
	{"GET", "/readyz"},                                        // Readyz
	{"GET", "/metrics"},                                       // Metrics
	{"GET", "/openapi.json"},                                  // OpenAPI
	{"POST", "/hooks/{id}"},                                   // (a provider's request; not wrapped)
	{"GET", "/v1/admin/maintenance"},                          // Maintenance
	{"PUT", "/v1/admin/maintenance"},                          // SetMaintenance
	{"DELETE", "/v1/admin/maintenance"},                       // EndMaintenance
	{"GET", "/v1/admin/tenants"},                              // Tenants
	{"POST", "/v1/admin/tenants"},                             // CreateTenant
	{"GET", "/v1/admin/tenants/{tenant}"},                     // GetTenant
	{"PATCH", "/v1/admin/tenants/{tenant}"},                   // UpdateTenant
	{"DELETE", "/v1/admin/tenants/{tenant}"},                  // DeleteTenant
	{"GET", "/v1/audit"},                                      // Audit
	{"POST", "/v1/batches"},                                   // SubmitBatch
	{"GET", "/v1/batches/{id}"},                               // GetBatch
	{"POST", "/v1/batches/{id}/close"},                        // CloseBatch
	{"POST", "/v1/batches/{id}/tasks"},                        // AddToBatch
	{"GET", "/v1/callbacks"},                                  // Callbacks
	{"POST", "/v1/callbacks/rotate-secret"},                   // RotateCallbackSecret
	{"GET", "/v1/doctor"},                                     // Doctor
	{"GET", "/v1/events"},                                     // Events
	{"GET", "/v1/events/stream"},                              // Follow
	{"POST", "/v1/events/tickets"},                            // EventTicket
	{"GET", "/v1/events/ws"},                                  // (Follow, over SSE)
	{"GET", "/v1/hooks"},                                      // Hooks
	{"POST", "/v1/hooks"},                                     // CreateHook
	{"GET", "/v1/hooks/{id}"},                                 // GetHook
	{"PATCH", "/v1/hooks/{id}"},                               // UpdateHook
	{"DELETE", "/v1/hooks/{id}"},                              // DeleteHook
	{"GET", "/v1/hooks/{id}/requests"},                        // HookRequests
	{"POST", "/v1/hooks/{id}/rotate-secret"},                  // RotateHookSecret
	{"GET", "/v1/keys"},                                       // Keys
	{"POST", "/v1/keys"},                                      // CreateKey
	{"GET", "/v1/keys/{id}"},                                  // GetKey
	{"DELETE", "/v1/keys/{id}"},                               // RevokeKey
	{"POST", "/v1/keys/{id}/rotate"},                          // RotateKey
	{"POST", "/v1/keys/{id}/sessions/revoke"},                 // RevokeKeySessions
	{"GET", "/v1/queues"},                                     // Queues
	{"GET", "/v1/queues/{queue}"},                             // GetQueue
	{"PATCH", "/v1/queues/{queue}"},                           // UpdateQueue
	{"POST", "/v1/queues/{queue}/claim"},                      // Claim
	{"GET", "/v1/queues/{queue}/groups"},                      // Groups
	{"PUT", "/v1/queues/{queue}/groups/{group}"},              // SetGroup
	{"POST", "/v1/queues/{queue}/pause"},                      // PauseQueue
	{"POST", "/v1/queues/{queue}/resume"},                     // ResumeQueue
	{"GET", "/v1/queues/{queue}/tasks"},                       // ListTasks, DeadLetters
	{"POST", "/v1/queues/{queue}/tasks"},                      // Enqueue, EnqueueBatch
	{"DELETE", "/v1/queues/{queue}/tasks"},                    // PurgeQueue
	{"GET", "/v1/roles"},                                      // Roles
	{"GET", "/v1/roles/{name}"},                               // GetRole
	{"PUT", "/v1/roles/{name}"},                               // PutRole
	{"DELETE", "/v1/roles/{name}"},                            // DeleteRole
	{"GET", "/v1/schedules"},                                  // Schedules
	{"GET", "/v1/schedules/{name}"},                           // GetSchedule
	{"PUT", "/v1/schedules/{name}"},                           // PutSchedule
	{"DELETE", "/v1/schedules/{name}"},                        // DeleteSchedule
	{"POST", "/v1/schedules/{name}/pause"},                    // PauseSchedule
	{"POST", "/v1/schedules/{name}/resume"},                   // ResumeSchedule
	{"POST", "/v1/schedules/{name}/trigger"},                  // TriggerSchedule
	{"POST", "/v1/tasks/complete"},                            // CompleteBatch
	{"POST", "/v1/tasks/fail"},                                // FailBatch
	{"GET", "/v1/tasks/{id}"},                                 // GetTask, WaitTask
	{"DELETE", "/v1/tasks/{id}"},                              // DeleteTask
	{"POST", "/v1/tasks/{id}/cancel"},                         // CancelTask
	{"POST", "/v1/tasks/{id}/complete"},                       // Complete
	{"POST", "/v1/tasks/{id}/fail"},                           // Fail
	{"POST", "/v1/tasks/{id}/heartbeat"},                      // Heartbeat
	{"POST", "/v1/tasks/{id}/kill"},                           // KillTask
	{"POST", "/v1/tasks/{id}/retry"},                          // RetryTask
	{"POST", "/v1/tasks/{id}/run-now"},                        // RunNow
	{"POST", "/v1/tasks/{id}/spawn"},                          // Spawn
	{"GET", "/v1/webhooks"},                                   // Webhooks
	{"POST", "/v1/webhooks"},                                  // CreateWebhook
	{"GET", "/v1/webhooks/{id}"},                              // GetWebhook
	{"PATCH", "/v1/webhooks/{id}"},                            // UpdateWebhook
	{"DELETE", "/v1/webhooks/{id}"},                           // DeleteWebhook
	{"GET", "/v1/webhooks/{id}/deliveries"},                   // Deliveries
	{"POST", "/v1/webhooks/{id}/deliveries/{delivery}/retry"}, // RetryDelivery
	{"POST", "/v1/webhooks/{id}/rotate-secret"},               // RotateWebhookSecret
	{"GET", "/v1/whoami"},                                     // WhoAmI
	{"GET", "/v1/workers"},                                    // Processes
	{"POST", "/v1/workers/{wid}/quiet"},                       // QuietProcess
	{"POST", "/v1/workers/{wid}/terminate"},                   // TerminateProcess
	{"GET", "/v1/workflows"},                                  // ListWorkflows
	{"POST", "/v1/workflows"},                                 // SubmitWorkflow
	{"GET", "/v1/workflows/{id}"},                             // GetWorkflow
	{"POST", "/v1/workflows/{id}/cancel"},                     // CancelWorkflow
}

// models are the library's types for the server's component schemas: their JSON field names
// are the schema's properties this library knows.
var models = map[string]any{
	"AttemptError":       AttemptError{},
	"AuditEntry":         AuditEntry{},
	"AuditList":          AuditList{},
	"Backoff":            Backoff{},
	"BatchInput":         batchInput{},
	"BatchSummary":       BatchSummary{},
	"CallbacksOut":       CallbacksSecret{},
	"ClaimBody":          ClaimOptions{},
	"ClaimedTask":        Task{},
	"ClientLimits":       ClientLimits{},
	"CompleteBody":       completeBody{},
	"CompleteItem":       CompleteItem{},
	"CreatedKey":         CreatedKey{},
	"DependencyResult":   DependencyResult{},
	"DeliveryList":       DeliveryList{},
	"DeliveryOut":        Delivery{},
	"EnqueuedTask":       without{EnqueuedTask{}, []string{"dependencies", "batch"}},
	"ErrorDetail":        ErrorDetail{},
	"EventBody":          Event{},
	"EventList":          EventList{},
	"FailBody":           failBody{},
	"FailItem":           FailItem{},
	"Finding":            Finding{},
	"FlowStats":          FlowStats{},
	"GroupInfo":          GroupInfo{},
	"GroupPage":          GroupPage{},
	"GroupSettings":      GroupSettings{},
	"HeartbeatBody":      heartbeatBody{},
	"Held":               Held{},
	"HookBody":           NewHook{},
	"HookOut":            Hook{},
	"HookPatchBody":      HookPatch{},
	"HookRequest":        HookRequest{},
	"HookRotateBody":     HookRotation{},
	"ItemOutcome":        ItemOutcome{},
	"KeyInfo":            Key{},
	"KillBody":           killBody{},
	"Lease":              Lease{},
	"Maintenance":        Maintenance{},
	"MaintenanceRequest": MaintenanceRequest{},
	"MaintenanceState":   maintenanceState{},
	"NewKey":             NewKey{},
	"NewTenant":          NewTenant{},
	"QueueInfo":          QueueInfo{},
	"QueuePatchBody":     QueuePatch{},
	"QueueSettings":      QueueSettings{},
	"QueueStats":         QueueStats{},
	"Rate":               Rate{},
	"Report":             DoctorReport{},
	"RoleBody":           roleBody{},
	"RoleInfo":           Role{},
	"RotateBody":         rotateBody{},
	"RotateKey":          rotateBody{},
	"Rule":               Rule{},
	"RunOut":             ScheduleRun{},
	"ScheduleBody":       Schedule{},
	"ScheduleOut":        ScheduleInfo{},
	"SpawnBody":          spawnBody{},
	"SpawnedTasks":       Spawned{},
	"StateCounts":        StateCounts{},
	"Status":             Health{},
	"Task":               without{Task{}, []string{"dependencies", "batch"}}, // only claims carry them (ClaimedTask)
	"TaskInput":          TaskInput{},
	"TaskList":           TaskList{},
	"TenantPatch":        TenantPatch{},
	"TenantRecord":       Tenant{},
	"Ticket":             Ticket{},
	"TokenResponse":      AccessToken{},
	"WebhookBody":        NewWebhook{},
	"WebhookOut":         Webhook{},
	"WebhookPatchBody":   WebhookPatch{},
	"WhoAmI":             WhoAmI{},
	"Worker":             Process{},
	"Workflow":           Workflow{},
	"WorkflowList":       WorkflowList{},
	"WorkflowTask":       WorkflowTask{},
	"WorkflowTaskInput":  WorkflowTaskInput{},
}

// without is a model whose type has fields (JSON names) that its schema lacks: a Go type
// serving more than one schema, its extra fields listed under another schema's name.
type without struct {
	model  any
	fields []string
}

func (w without) known() []string {
	var names []string
	for _, name := range jsonFields(reflect.TypeOf(w.model)) {
		skip := false
		for _, f := range w.fields {
			skip = skip || f == name
		}
		if !skip {
			names = append(names, name)
		}
	}
	return names
}

// envelopes are the schemas the library reads or writes through an unnamed wrapper (the list
// in a list's answer, a batch's items), with the fields it uses.
var envelopes = map[string][]string{
	"AddedList":     {"tasks"},
	"AddedTasks":    {"tasks"},
	"BatchOutcome":  {"items"},
	"Claimed":       {"tasks"},
	"CompleteBatch": {"items"},
	"EnqueueBody":   {"tasks"},
	"EnqueuedBatch": {"tasks"},
	"ErrorBody":     {"error"},
	"FailBatch":     {"items"},
	"KeyList":       {"keys"},
	"Purged":        {"deleted"},
	"QueueList":     {"queues"},
	"RoleList":      {"roles"},
	"ScheduleList":  {"schedules"},
	"TenantList":    {"tenants"},
	"WebhookList":   {"webhooks"},
	"WorkerList":    {"workers"},
	"WorkflowInput": {"tasks"},
	// The name or id of what a DELETE removed, which its caller already holds: deliberately
	// not returned.
	"Deleted": {"deleted"},

	// Inbound webhooks: the lists Hooks and HookRequests unwrap, and the answer a provider gets
	// from POST /hooks/{id}, which the library does not send.
	"HookList":        {"hooks"},
	"HookRequestList": {"requests"},
	"HookReceived":    {"duplicate", "task_id"},

	// OAuth 2.0: the form FetchToken sends, and the token endpoint's errors (RFC 6749), which
	// answerError reads into Error's Code and Message.
	"TokenRequest":   {"grant_type", "client_id", "client_secret", "scope"},
	"OAuthErrorBody": {"error", "error_description"},
}

// KnownOperations are the operations of the server's API this library implements.
func KnownOperations() []Operation {
	return append([]Operation(nil), operations...)
}

// KnownFields maps each component schema of the server's OpenAPI document that the library
// models to the properties it knows, sorted.
func KnownFields() map[string][]string {
	out := make(map[string][]string, len(models)+len(envelopes))
	for name, model := range models {
		if w, ok := model.(without); ok {
			out[name] = w.known()
		} else {
			out[name] = jsonFields(reflect.TypeOf(model))
		}
	}
	for name, fields := range envelopes {
		out[name] = append(out[name], fields...)
	}
	for _, fields := range out {
		sort.Strings(fields)
	}
	return out
}

// jsonFields are the JSON names of a struct's fields, those of embedded structs included.
func jsonFields(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" {
			names = append(names, jsonFields(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		names = append(names, name)
	}
	return names
}
