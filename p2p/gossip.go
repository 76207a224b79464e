package p2p

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pyvnode/pyvnode/ledger"
)

// GossipVersion is the first byte of every gossip message.
const GossipVersion = 0x01

// maxGossip bounds a gossip message: version, replication count and the
// largest envelope.
const maxGossip = 2 + ledger.MaxRecordSize

// EncodeGossip is a gossip message: version (1 byte), the sender's
// replication count of the record (1 byte), the record's envelope.
func EncodeGossip(rec *ledger.SignedRecord, replication uint8) []byte {
	env := rec.Encode()
	b := make([]byte, 0, 2+len(env))
	b = append(b, GossipVersion, replication)
	return append(b, env...)
}

// DecodeGossip splits a gossip message. The envelope is not checked here.
func DecodeGossip(b []byte) (replication uint8, envelope []byte, err error) {
	if len(b) < 3 {
		return 0, nil, fmt.Errorf("%w: gossip message of %d bytes", errFrame, len(b))
	}
	if b[0] != GossipVersion {
		return 0, nil, fmt.Errorf("%w: gossip version %#x", errFrame, b[0])
	}
	if len(b) > maxGossip {
		return 0, nil, fmt.Errorf("%w: gossip message of %d bytes, limit %d", errFrame, len(b), maxGossip)
	}
	return b[1], b[2:], nil
}

// gossipMessageID names a message by the SHA-256 of its envelope, so the
// same record is one message whoever publishes it and at whatever count.
//
// Only a message of this version is named that way. GossipSub marks an id
// seen before the validator runs, and holds a rejected id against every
// peer that delivers it later; were a broken message (another version
// byte, too short) named by the same hash as a valid one, a peer sending
// it first would make the node drop the valid record as a duplicate and
// penalise the honest peers forwarding it. Any other message is named by
// the hash of all its bytes behind a 0x00 byte, an id of another length.
func gossipMessageID(m *pb.Message) string {
	data := m.GetData()
	if len(data) < 2 || data[0] != GossipVersion {
		h := sha256.Sum256(data)
		return "\x00" + string(h[:])
	}
	h := sha256.Sum256(data[2:])
	return string(h[:])
}

// rejectsBeforeBan is how many invalid records a peer may hand us (by
// gossip or reconciliation) before it is disconnected and banned. Honest
// peers validate before they forward, so they send none.
const rejectsBeforeBan = 8

func (n *Network) startGossip() error {
	topic := Topic(n.chain.Genesis().Network)
	score := &pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		Topics: map[string]*pubsub.TopicScoreParams{
			topic: {
				SkipAtomicValidation:           true,
				TopicWeight:                    1,
				TimeInMeshQuantum:              time.Second, // weight 0, but the score divides by it
				InvalidMessageDeliveriesWeight: -100,
				InvalidMessageDeliveriesDecay:  0.9,
			},
		},
		AppSpecificScore: func(peer.ID) float64 { return 0 },
		DecayInterval:    time.Second,
		DecayToZero:      0.01,
		RetainScore:      10 * time.Minute,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:   -100,
		PublishThreshold:  -500,
		GraylistThreshold: -1000,
	}
	var err error
	n.ps, err = pubsub.NewGossipSub(n.ctx, n.host,
		pubsub.WithPeerExchange(false),
		pubsub.WithFloodPublish(true),
		pubsub.WithMessageIdFn(gossipMessageID),
		// A record carries its origin's signature, checked by the
		// validator; a pubsub signature on top would cost a sign per
		// publication and a verify per hop for nothing.
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMaxMessageSize(maxGossip+1024),
		pubsub.WithPeerScore(score, thresholds),
		// Bursts of puts: the default queues (32 messages per peer) drop
		// records that reconciliation then has to carry.
		pubsub.WithValidateQueueSize(4096),
		pubsub.WithPeerOutboundQueueSize(1024),
	)
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	if err := n.ps.RegisterTopicValidator(topic, n.validateGossip,
		pubsub.WithValidatorTimeout(30*time.Second), pubsub.WithValidatorConcurrency(4096)); err != nil {
		return fmt.Errorf("gossip validator: %w", err)
	}
	if n.topic, err = n.ps.Join(topic); err != nil {
		return fmt.Errorf("gossip: join %s: %w", topic, err)
	}
	if n.sub, err = n.topic.Subscribe(pubsub.WithBufferSize(1024)); err != nil {
		return fmt.Errorf("gossip: subscribe: %w", err)
	}
	n.wg.Add(1)
	go n.drain()
	return nil
}

// drain consumes the subscription: the work is done in the validator,
// which stores a record before GossipSub forwards it.
func (n *Network) drain() {
	defer n.wg.Done()
	for {
		if _, err := n.sub.Next(n.ctx); err != nil {
			return
		}
	}
}

// validateGossip checks a gossiped record and stores it. It runs before
// GossipSub delivers or forwards the message: Reject lowers the sender's
// score and the message goes no further; Ignore drops a duplicate quietly.
func (n *Network) validateGossip(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	if from == n.host.ID() {
		return pubsub.ValidationAccept // our own publication: stored already
	}
	if n.gater.refused(from) != "" {
		// Ignore, not Reject: the message id says nothing of the sender,
		// and a rejected id is held against the honest peers that
		// forward the same record.
		return pubsub.ValidationIgnore
	}
	n.peersMu.Lock()
	st := n.peers[from]
	ready := st != nil && st.ready
	n.peersMu.Unlock()
	if !ready {
		// Not through the hello exchange: of no known network, like a
		// peer reconciliation refuses. What an honest peer sends in the
		// moment before its hello comes by the reconciliation after it.
		n.stats.add(&n.stats.GossipIgnored, 1)
		return pubsub.ValidationIgnore
	}
	repl, env, err := DecodeGossip(m.Data)
	if err != nil {
		n.rejected(from, "gossip", "malformed", err)
		return pubsub.ValidationReject
	}
	rec, err := ledger.DecodeSignedRecord(env)
	if err != nil {
		n.rejected(from, "gossip", ledger.CheckName(err), err)
		return pubsub.ValidationReject
	}
	if has, _ := n.chain.Store().Has(rec.ID); has {
		n.stats.add(&n.stats.GossipIgnored, 1)
		return pubsub.ValidationIgnore
	}
	if err := n.validator.Check(rec); err != nil {
		if errors.Is(err, ledger.ErrTime) {
			// Perhaps only our clocks disagree: not the peer's fault.
			n.rlog.Info("gossip: record from the future ignored", "peer", from.String(), "id", rec.ID.String(), "err", err)
			return pubsub.ValidationIgnore
		}
		n.rejected(from, "gossip", ledger.CheckName(err), err)
		return pubsub.ValidationReject
	}
	count := hop(repl)
	e, err := n.chain.Store().Append(ctx, rec, count, "gossip:"+from.String())
	switch {
	case errors.Is(err, ledger.ErrExists):
		n.stats.add(&n.stats.GossipIgnored, 1)
		return pubsub.ValidationIgnore
	case err != nil:
		n.rlog.Error("gossip: store record", "id", rec.ID.String(), "err", err)
		return pubsub.ValidationIgnore
	}
	n.stored(rec, e)
	n.stats.add(&n.stats.GossipAccepted, 1)
	n.rlog.Debug("gossip: stored", "peer", from.String(), "id", rec.ID.String(), "kind", rec.Kind,
		"height", e.Height, "replication", count)
	return pubsub.ValidationAccept
}

// hop is the replication count of a record one hand-over further.
func hop(c uint8) uint8 {
	if c == 255 {
		return c
	}
	return c + 1
}

// stored takes note of a record that reached the chain from a peer.
func (n *Network) stored(rec *ledger.SignedRecord, e ledger.Entry) {
	n.insert(rec)
	if n.cfg.Stored != nil {
		n.cfg.Stored(rec, e)
	}
}

// rejected counts an invalid record from a peer and bans the peer once it
// has sent too many.
func (n *Network) rejected(from peer.ID, path, reason string, err error) {
	if reason == "" {
		reason = "malformed"
	}
	n.stats.reject(path, reason)
	n.rlog.Warn(path+": invalid record rejected", "peer", from.String(), "reason", reason, "err", err)
	n.peersMu.Lock()
	st := n.peerLocked(from)
	st.rejects++
	banned := st.rejects >= rejectsBeforeBan
	if banned {
		st.rejects = 0
	}
	n.peersMu.Unlock()
	if banned {
		n.log.Warn("banning peer that keeps sending invalid records", "peer", from.String(), "for", banFor.String())
		n.gater.ban(from, banFor, "invalid records")
		go n.host.Network().ClosePeer(from)
	}
}

// publish gossips a record of ours with its replication count.
func (n *Network) publish(ctx context.Context, rec *ledger.SignedRecord, replication uint8) error {
	if n.topic == nil {
		return errClosed
	}
	if err := n.topic.Publish(ctx, EncodeGossip(rec, replication)); err != nil {
		return err
	}
	n.stats.add(&n.stats.Published, 1)
	return nil
}
