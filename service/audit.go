package service

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode"

	"github.com/hegate/hegate/storage"
)

// Outcomes of an audited action.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
)

// maxAuditDetail bounds what one audit event says about its change.
const maxAuditDetail = 4 << 10

// Audit records an action a front door carried out itself (a console
// login, a streamed upload), with detail marshalled to JSON.
func (s *Service) Audit(ctx context.Context, p Principal, action, object string, detail any) {
	s.audit(ctx, p, action, object, detail)
}

// audit records a change the principal made. The change is already made:
// a failure to record it is logged (with everything the event holds)
// rather than undoing it.
func (s *Service) audit(ctx context.Context, p Principal, action, object string, detail any) {
	s.record(ctx, p, action, object, OutcomeOK, detail)
}

// denied records a change the principal was refused for its role and
// returns err.
func (s *Service) denied(ctx context.Context, p Principal, action, object string, err error) error {
	s.record(ctx, p, action, object, OutcomeDenied, nil)
	return err
}

func (s *Service) record(ctx context.Context, p Principal, action, object, outcome string, detail any) {
	ev := auditEvent(p, auditText(action, storage.MaxAuditActionBytes), auditText(object, storage.MaxAuditObjectBytes), outcome, detail, s.now())
	ev.From = auditText(ev.From, storage.MaxFromBytes)
	ev.RequestID = auditText(ev.RequestID, storage.MaxAuditRequestIDBytes)
	if _, err := s.store.RecordAudit(ctx, ev); err != nil {
		s.log.ErrorContext(ctx, "recording an audit event", logAttrs(p, "action", action, "object", object, "outcome", outcome, "error", err.Error())...)
		return
	}
	s.info(ctx, p, action, "object", object, "outcome", outcome)
}

// auditEvent builds the event of an action; detail is marshalled to JSON
// and dropped (with a note) if it is too large.
func auditEvent(p Principal, action, object, outcome string, detail any, at time.Time) storage.AuditEvent {
	ev := storage.AuditEvent{
		TenantID:  p.Tenant,
		At:        at,
		Actor:     p.Actor(),
		Action:    action,
		Object:    object,
		From:      p.From,
		RequestID: p.RequestID,
		Outcome:   outcome,
	}
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil || len(b) > maxAuditDetail {
			b = []byte(`{"note":"detail omitted: too large"}`)
		}
		ev.Detail = b
	}
	return ev
}

// auditText makes s fit an audit field of at most n bytes: valid UTF-8,
// no control characters (PostgreSQL refuses NUL), cut at a character
// boundary. A refusal must be recorded whatever the client sent.
func auditText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
	return truncate(s, n-3)
}
