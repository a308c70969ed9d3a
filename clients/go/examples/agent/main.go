// Command agent is a version-monitor agent: each organisation runs one, and it checks the
// packages its organisation watches against their registry, reporting the latest version of
// each. It gets only its organisation's work, and stays under a rate limit, by how its queue
// and key are set up (see setup.go):
//
//	# an operator, with an admin token: the org's queue, its rate limit and the agent's key
//	ROTA_TOKEN=$ADMIN agent setup -org org-42 -rate 5/1s
//	# the service that owns the watch list enqueues checks (a producer key)
//	ROTA_TOKEN=$ADMIN agent enqueue -org org-42 left-pad express react@17.0.2
//	# the agent, with the key setup printed: it can claim from its org's queue and nothing else
//	ROTA_TOKEN=$AGENT_KEY agent run -org org-42
//
// ROTA_URL names the server (default http://127.0.0.1:7070).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	rota "github.com/rota-dev/rota/clients/go"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	flags := flag.NewFlagSet(cmd, flag.ExitOnError)
	org := flags.String("org", "", "the organisation (the tasks' group), e.g. org-42")
	rate := flags.String("rate", "5/1s", "setup: checks the org may start, as N/PERIOD (5/1s, 300/1m)")
	registry := flags.String("registry", "https://registry.npmjs.org", "run: the npm-style registry to ask")
	concurrency := flags.Int("concurrency", 4, "run: checks at once")
	_ = flags.Parse(args)
	if *org == "" {
		log.Fatal("-org is required")
	}
	client, err := rota.New()
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "setup":
		limit, err := parseRate(*rate)
		if err != nil {
			log.Fatal(err)
		}
		token, err := setup(ctx, client, *org, limit)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("queue %s is ready; the agent's key (shown once): %s\n", queueFor(*org), token)
	case "enqueue":
		if err := enqueue(ctx, client, *org, flags.Args(), os.Stdout); err != nil {
			log.Fatal(err)
		}
	case "run":
		checker := &checker{org: *org, registry: *registry}
		worker := &rota.Worker{
			Client:      client,
			Queue:       queueFor(*org),
			Kinds:       []string{checkKind},
			Concurrency: *concurrency,
			Handler:     checker.check,
		}
		log.Printf("agent for %s: checking versions; Ctrl-C to stop", *org)
		stats, err := worker.Run(ctx)
		log.Printf("stopped: %d checked, %d failed", stats.Succeeded, stats.Failed)
		if err != nil {
			log.Fatal(err)
		}
	default:
		usage()
	}
}

func usage() {
	log.Fatal("usage: agent setup|enqueue|run -org ORG [flags] [packages]")
}
