package rota_test

import (
	"testing"

	rota "github.com/rota-dev/rota/clients/go"
)

func TestS09Schedules(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	name := "sync-" + q
	created, err := c.PutSchedule(ctx, name, rota.Schedule{
		Queue: q, Kind: "sync", Payload: rawJSON(t, map[string]string{"mirror": "crates"}),
		Cron: "0 3 * * *", Timezone: "Europe/Berlin", Overlap: "skip",
	})
	if err != nil {
		t.Fatal(err)
	}
	if created.Name != name || created.Cron == nil || *created.Cron != "0 3 * * *" || created.NextRunAt == nil || created.Overlap != "skip" {
		t.Fatalf("created %+v", created)
	}
	list, err := c.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range list {
		found = found || s.Name == name
	}
	if !found {
		t.Fatalf("%s not listed", name)
	}
	triggered, err := c.TriggerSchedule(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(triggered.Runs) != 1 || triggered.Runs[0].TaskID == nil {
		t.Fatalf("trigger: %+v", triggered.Runs)
	}
	task, err := c.GetTask(ctx, *triggered.Runs[0].TaskID)
	if err != nil || task.Queue != q || task.Kind != "sync" {
		t.Fatalf("the triggered task: %v %+v", err, task)
	}
	paused, err := c.PauseSchedule(ctx, name)
	if err != nil || !paused.Paused {
		t.Fatalf("pause: %v", err)
	}
	got, err := c.GetSchedule(ctx, name)
	if err != nil || !got.Paused || got.Queue != q {
		t.Fatalf("get: %v %+v", err, got)
	}
	if _, err := c.ResumeSchedule(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSchedule(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSchedule(ctx, name); !rota.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
	// A schedule needs exactly one of cron and every_ms.
	if _, err := c.PutSchedule(ctx, name, rota.Schedule{Queue: q}); rota.ErrorCode(err) != rota.CodeInvalidField {
		t.Fatalf("without cron or every_ms: %v", err)
	}
}
