package rota

import "time"

// Backoff is a queue's retry delay: full jitter between 0 and base × 2^(attempt-1), at most max.
type Backoff struct {
	BaseMs int64 `json:"base_ms"`
	MaxMs  int64 `json:"max_ms"`
}

// Rate is a start-rate limit: at most Limit starts in any PeriodMs, Burst of them at once.
type Rate struct {
	Limit    int   `json:"limit"`
	PeriodMs int64 `json:"period_ms"`
	Burst    int   `json:"burst,omitempty"`
}

// QueueSettings are a queue's settings.
type QueueSettings struct {
	MaxAttempts      int     `json:"max_attempts"`
	Backoff          Backoff `json:"backoff"`
	LeaseMs          int64   `json:"lease_ms"`
	RetentionMs      int64   `json:"retention_ms"`
	Paused           bool    `json:"paused"`
	Concurrency      *int    `json:"concurrency"`
	Rate             *Rate   `json:"rate"`
	GroupConcurrency *int    `json:"group_concurrency"`
	GroupRate        *Rate   `json:"group_rate"`
	CallbackURL      *string `json:"callback_url"`
}

// StateCounts counts a queue's tasks by state.
type StateCounts struct {
	Waiting   int64 `json:"waiting"`
	Scheduled int64 `json:"scheduled"`
	Ready     int64 `json:"ready"`
	Running   int64 `json:"running"`
	Succeeded int64 `json:"succeeded"`
	Dead      int64 `json:"dead"`
	Cancelled int64 `json:"cancelled"`
}

// QueueInfo is a queue as the queue list shows it.
type QueueInfo struct {
	Name             string        `json:"name"`
	Settings         QueueSettings `json:"settings"`
	Counts           StateCounts   `json:"counts"`
	OldestReadyAgeMs *int64        `json:"oldest_ready_age_ms"`
	LastClaimAt      *time.Time    `json:"last_claim_at"`
	NextStartAt      *time.Time    `json:"next_start_at"`
	CreatedAt        time.Time     `json:"created_at"`
	Shard            *int          `json:"shard"`
}

// QueueStats is one queue with what its flow-control limits hold back now.
type QueueStats struct {
	QueueInfo
	Flow FlowStats `json:"flow"`
}

// FlowStats is a queue's running tasks beside its limits, and what those hold back.
type FlowStats struct {
	Running             int64       `json:"running"`
	Concurrency         *int        `json:"concurrency"`
	Rate                *Rate       `json:"rate"`
	NextStartAt         *time.Time  `json:"next_start_at"`
	Held                Held        `json:"held"`
	GroupsSeen          int64       `json:"groups_seen"`
	GroupsComplete      bool        `json:"groups_complete"`
	BusiestGroups       []GroupInfo `json:"busiest_groups"`
	LongestWaitingGroup *GroupInfo  `json:"longest_waiting_group"`
	MedianGroupWaitMs   *int64      `json:"median_group_wait_ms"`
}

// Held counts the ready tasks each limit holds back now.
type Held struct {
	QueuePaused      int64 `json:"queue_paused"`
	QueueConcurrency int64 `json:"queue_concurrency"`
	QueueRate        int64 `json:"queue_rate"`
	GroupPaused      int64 `json:"group_paused"`
	GroupConcurrency int64 `json:"group_concurrency"`
	GroupRate        int64 `json:"group_rate"`
}

// GroupInfo is one group of a queue: its counts, the limits in force and what holds it back.
type GroupInfo struct {
	Group            string        `json:"group"`
	Ready            int64         `json:"ready"`
	Running          int64         `json:"running"`
	Concurrency      *int          `json:"concurrency"`
	Rate             *Rate         `json:"rate"`
	HeldBy           *string       `json:"held_by"`
	NextStartAt      *time.Time    `json:"next_start_at"`
	OldestReadyAgeMs *int64        `json:"oldest_ready_age_ms"`
	Settings         GroupSettings `json:"settings"`
}

// GroupSettings are one group's own settings; the zero value removes them.
type GroupSettings struct {
	Concurrency *int  `json:"concurrency,omitempty"`
	Rate        *Rate `json:"rate,omitempty"`
	Paused      bool  `json:"paused,omitempty"`
	Weight      int   `json:"weight,omitempty"`
}

// GroupPage is one page of a queue's groups, by name.
type GroupPage struct {
	Groups []GroupInfo `json:"groups"`
	// Next is the after of the next page; nil on the last.
	Next *string `json:"next"`
}

// QueuePatch changes the settings it names; nil fields stay as they are and Clear() lifts a
// limit.
type QueuePatch struct {
	MaxAttempts      *int              `json:"max_attempts,omitempty"`
	Backoff          *Backoff          `json:"backoff,omitempty"`
	LeaseMs          *int64            `json:"lease_ms,omitempty"`
	RetentionMs      *int64            `json:"retention_ms,omitempty"`
	Paused           *bool             `json:"paused,omitempty"`
	Concurrency      *Nullable[int]    `json:"concurrency,omitempty"`
	Rate             *Nullable[Rate]   `json:"rate,omitempty"`
	GroupConcurrency *Nullable[int]    `json:"group_concurrency,omitempty"`
	GroupRate        *Nullable[Rate]   `json:"group_rate,omitempty"`
	CallbackURL      *Nullable[string] `json:"callback_url,omitempty"`
}
