// floorwriter: the lowest-overhead writer this project can build, the "floor" of
// benchmarks/bench_compare.py. It replays a recorded list of API writes (method, request URI,
// body) with client-go's transport (TLS, bearer token, HTTP/2: every request multiplexed over
// one connection) at high concurrency and with no client-side rate limit, and nothing else:
// no informers, no caches, no reads, no rendering, no diffing.
//
// Usage: floorwriter -kubeconfig FILE -ops FILE [-concurrency 256] [-gate-namespace NS]
//
// The ops file is JSON lines, one write each, in the order to send them per object:
//
//	{"verb": "PATCH", "uri": "/api/v1/namespaces/n/configmaps/c?fieldManager=thv&force=true",
//	 "ctype": "application/apply-patch+yaml", "body": {...}, "key": "...", "gate": "deploy-name"}
//
// Writes with the same "key" (an object) go out one after another, in file order; different
// keys go out concurrently (at most -concurrency requests in flight). A write with a "gate"
// waits until the Deployment of that name in -gate-namespace has availableReplicas >= 1
// (watched, one list+watch stream), as an operator writes "Running" only then.
//
// Protocol: after loading the ops and opening the connection (a cheap authenticated GET), it
// prints "ready" on stdout and waits for one line on stdin; then it sends everything and
// prints one JSON summary line: {"sent", "ok", "failed", "by_status", "seconds", "errors"}.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

type op struct {
	Verb  string          `json:"verb"`
	URI   string          `json:"uri"`
	CType string          `json:"ctype"`
	Body  json.RawMessage `json:"body"`
	Key   string          `json:"key"`
	Gate  string          `json:"gate"`
}

type summary struct {
	Sent     int64            `json:"sent"`
	OK       int64            `json:"ok"`
	Failed   int64            `json:"failed"`
	ByStatus map[string]int64 `json:"by_status"`
	Seconds  float64          `json:"seconds"`
	Errors   []string         `json:"errors"`
}

// gates: Deployment name -> closed when it is available.
type gates struct {
	mu    sync.Mutex
	chans map[string]chan struct{}
	done  map[string]bool
}

func (g *gates) ch(name string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.chans[name]
	if !ok {
		c = make(chan struct{})
		g.chans[name] = c
	}
	return c
}

func (g *gates) open(name string) {
	c := g.ch(name)
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.done[name] {
		g.done[name] = true
		close(c)
	}
}

type deployment struct {
	Metadata struct {
		Name            string `json:"name"`
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Status struct {
		AvailableReplicas int `json:"availableReplicas"`
	} `json:"status"`
}

func watchDeployments(ctx context.Context, hc *http.Client, host, ns string, g *gates, fail func(string)) {
	base := host + "/apis/apps/v1/namespaces/" + ns + "/deployments"
	for ctx.Err() == nil {
		resp, err := hc.Get(base)
		if err != nil {
			fail("list deployments: " + err.Error())
			time.Sleep(200 * time.Millisecond)
			continue
		}
		var list struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
			Items []deployment `json:"items"`
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil {
			fail("list deployments: " + err.Error())
			continue
		}
		for _, d := range list.Items {
			if d.Status.AvailableReplicas >= 1 {
				g.open(d.Metadata.Name)
			}
		}
		req, _ := http.NewRequestWithContext(ctx, "GET",
			base+"?watch=1&allowWatchBookmarks=true&resourceVersion="+list.Metadata.ResourceVersion, nil)
		resp, err = hc.Do(req)
		if err != nil {
			continue
		}
		dec := json.NewDecoder(resp.Body)
		for {
			var ev struct {
				Type   string     `json:"type"`
				Object deployment `json:"object"`
			}
			if err := dec.Decode(&ev); err != nil {
				break
			}
			if (ev.Type == "ADDED" || ev.Type == "MODIFIED") && ev.Object.Status.AvailableReplicas >= 1 {
				g.open(ev.Object.Metadata.Name)
			}
		}
		resp.Body.Close()
	}
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the identity to write as")
	opsPath := flag.String("ops", "", "JSON lines of writes")
	concurrency := flag.Int("concurrency", 256, "requests in flight at most")
	gateNS := flag.String("gate-namespace", "", "namespace of the Deployments that gate writes")
	flag.Parse()
	die := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "floorwriter: "+f+"\n", a...); os.Exit(1) }

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		die("kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limit
	cfg.UserAgent = "floorwriter"
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		die("transport: %v", err)
	}
	host := cfg.Host

	f, err := os.Open(*opsPath)
	if err != nil {
		die("%v", err)
	}
	var ops []op
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var o op
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			die("ops: %v", err)
		}
		ops = append(ops, o)
	}
	f.Close()
	// per key, in file order
	var order []string
	chains := map[string][]op{}
	for _, o := range ops {
		k := o.Key
		if k == "" {
			k = o.URI
		}
		if _, ok := chains[k]; !ok {
			order = append(order, k)
		}
		chains[k] = append(chains[k], o)
	}

	// open the (HTTP/2) connection before the clock starts
	if resp, err := hc.Get(host + "/version"); err != nil {
		die("connect: %v", err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	s := summary{ByStatus: map[string]int64{}}
	fail := func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		if len(s.Errors) < 20 {
			s.Errors = append(s.Errors, msg)
		}
	}
	g := &gates{chans: map[string]chan struct{}{}, done: map[string]bool{}}
	if *gateNS != "" {
		go watchDeployments(ctx, hc, host, *gateNS, g, fail)
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')

	t0 := time.Now()
	sem := make(chan struct{}, *concurrency)
	var sent, ok, failed atomic.Int64
	send := func(o op) {
		for attempt := 0; ; attempt++ {
			sem <- struct{}{}
			req, _ := http.NewRequestWithContext(ctx, o.Verb, host+o.URI, bytes.NewReader(o.Body))
			if len(o.Body) > 0 {
				req.Header.Set("Content-Type", o.CType)
			}
			req.Header.Set("Accept", "application/json")
			resp, err := hc.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			<-sem
			sent.Add(1)
			if err != nil {
				if attempt < 3 {
					continue
				}
				failed.Add(1)
				fail(fmt.Sprintf("%s %s: %v", o.Verb, o.URI, err))
				return
			}
			mu.Lock()
			s.ByStatus[fmt.Sprint(resp.StatusCode)]++
			mu.Unlock()
			if resp.StatusCode < 300 {
				ok.Add(1)
			} else {
				failed.Add(1)
				fail(fmt.Sprintf("%s %s: HTTP %d", o.Verb, o.URI, resp.StatusCode))
			}
			return
		}
	}
	var wg sync.WaitGroup
	for _, k := range order {
		chain := chains[k]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, o := range chain {
				if o.Gate != "" {
					<-g.ch(o.Gate)
				}
				send(o)
			}
		}()
	}
	wg.Wait()
	s.Seconds = time.Since(t0).Seconds()
	s.Sent, s.OK, s.Failed = sent.Load(), ok.Load(), failed.Load()
	out, _ := json.Marshal(s)
	fmt.Println(string(out))
}
