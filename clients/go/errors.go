package rota

import (
	"errors"
	"fmt"
)

// Error is an error answer from the server: its HTTP status and the body's code and message
// (e.g. 404 task_not_found, 409 task_cancelled, 422 invalid_field).
type Error struct {
	Status  int
	Code    string
	Message string
	// RequestID is the X-Request-Id the request was sent with, as the server logs it.
	RequestID string
}

func (e *Error) Error() string {
	return fmt.Sprintf("rota: %d %s: %s", e.Status, e.Code, e.Message)
}

// Codes the server answers that a caller commonly branches on.
const (
	CodeBadRequest    = "bad_request"
	CodeUnauthorized  = "unauthorized"
	CodeForbidden     = "forbidden"
	CodeNotFound      = "not_found"
	CodeTaskNotFound  = "task_not_found"
	CodeQueueNotFound = "queue_not_found"
	CodeBatchNotFound = "batch_not_found"
	// CodeWorkflowNotFound is an unknown workflow or batch id (AddToBatch, CloseBatch).
	CodeWorkflowNotFound = "workflow_not_found"
	CodeTaskCancelled    = "task_cancelled"
	CodeLeaseLost        = "lease_lost"
	CodeInvalidState     = "invalid_state"
	CodeConflict         = "conflict"
	CodeInvalidField     = "invalid_field"
	CodeTooLarge         = "too_large"
	CodeRateLimited      = "rate_limited"
)

// ErrorCode is the server's code for err, or "" when err is not an answer from the server.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// IsNotFound reports whether the server answered 404 (an unknown task, queue, key, ...).
func IsNotFound(err error) bool { return statusOf(err) == 404 }

// IsCancelled reports whether the server answered 409 task_cancelled: the task was cancelled
// while this worker held it.
func IsCancelled(err error) bool { return ErrorCode(err) == CodeTaskCancelled }

// IsLeaseLost reports whether the server answered 409 lease_lost: the lease token no longer
// holds the task.
func IsLeaseLost(err error) bool { return ErrorCode(err) == CodeLeaseLost }

func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// retryable reports whether a failure is worth asking again for a loop that keeps running
// (the worker's claims and reports): the server was unreachable, busy or limiting us.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status == 429 || e.Status == 503
	}
	return err != nil
}

// serverFault reports whether the server failed rather than refused (500, or a load
// balancer's 502 or 504 while servers restart): a claim is asked again after it.
func serverFault(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status == 500 || e.Status == 502 || e.Status == 504
	}
	return false
}
