package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/metrics"
	"github.com/pyvnode/pyvnode/protocol/accounts"
	"github.com/pyvnode/pyvnode/web"
)

// startHTTP serves the control panel, the read API and the metrics.
func (n *Node) startHTTP() error {
	if n.cfg.HTTP == "" || n.cfg.HTTP == "-" {
		return nil
	}
	cfg := web.Config{
		Store: n.data.Store, Identity: n.data.Identity, Genesis: n.data.Genesis,
		Apps: n.apps, AppsReady: n.appsReady, Accounts: n.accounts, Dev: n.cfg.Dev,
		Logs: n.cfg.LogHub, Version: n.cfg.Version,
		Started: n.started, Logger: n.cfg.Logger, Peers: n.peers,
	}
	if n.accounts != nil {
		cfg.Submit = n.submit
	}
	if n.net != nil {
		cfg.Replicator = replicator{n}
	}
	// The metrics read the panel's counters; srv is set before anything
	// is served.
	var srv *web.Server
	var err error
	cfg.Metrics = n.metricsHandler(func() metrics.HTTPStats {
		st := srv.Stats()
		return metrics.HTTPStats{Logins: st.Logins, LoginFailures: st.LoginFailures, LiveStreams: st.LiveStreams, Rejected: st.Rejected}
	})
	ln, err := net.Listen("tcp", n.cfg.HTTP)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); (ok && tcp.IP.IsLoopback()) || len(n.cfg.HTTPHosts) > 0 {
		// Answering only to known names keeps other sites' pages out (DNS
		// rebinding): loopback names, the listen address, and the names
		// a proxy in front of the node serves it as.
		cfg.AllowedHosts = append(slices.Clone(web.LoopbackHosts), n.cfg.HTTPHosts...)
		if ok {
			cfg.AllowedHosts = append(cfg.AllowedHosts, tcp.IP.String())
		}
	}
	srv, err = web.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	n.web, n.httpLn = srv, ln
	n.httpDone = make(chan error, 1)
	go func() { n.httpDone <- srv.Serve(ln) }()
	return nil
}

// HTTPAddr is where the panel and API listen ("" when off).
func (n *Node) HTTPAddr() string {
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

func (n *Node) stopHTTP() {
	if n.web == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.web.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		n.log.Error("stop http", "err", err)
	}
	<-n.httpDone
	n.web = nil
}

// appsReady reports whether the applications' index has read the chain.
func (n *Node) appsReady() bool {
	select {
	case <-n.warm:
		return true
	default:
		return false
	}
}

// submit appends a record for a logged-in panel user: application kinds
// through their rules, generic kinds straight to the chain.
func (n *Node) submit(ctx context.Context, u accounts.Public, kind string, payload cbor.RawMessage) (*ledger.SignedRecord, ledger.Entry, error) {
	if !apps.Reserved(kind) {
		return n.Put(ctx, kind, payload, u.Name)
	}
	return n.apps.Submit(ctx, kind, payload, u.Name)
}
