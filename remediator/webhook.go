package remediator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
)

// WebhookVersion is the only Alertmanager webhook payload version accepted.
const WebhookVersion = "4"

// Alert statuses.
const (
	statusFiring   = "firing"
	statusResolved = "resolved"
)

// errBadMessage marks a payload that decodes but is not a usable webhook message.
var errBadMessage = errors.New("invalid webhook message")

// decodeMessage decodes and checks an Alertmanager webhook payload. Unknown
// fields are tolerated, so payloads of newer Alertmanagers (with
// notification_reason, routeLabels, ...) pass. Trailing data after the JSON
// object is an error.
func decodeMessage(body io.Reader) (*webhook.Message, error) {
	var msg webhook.Message
	dec := json.NewDecoder(body)
	if err := dec.Decode(&msg); err != nil {
		return nil, fmt.Errorf("decoding JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			return nil, fmt.Errorf("%w: data after the JSON object", errBadMessage)
		}
		return nil, fmt.Errorf("decoding JSON: %w", err)
	}
	if err := validateMessage(&msg); err != nil {
		return nil, err
	}
	return &msg, nil
}

func validateMessage(msg *webhook.Message) error {
	if msg.Version != WebhookVersion {
		return fmt.Errorf("%w: version %q, want %q", errBadMessage, msg.Version, WebhookVersion)
	}
	if msg.Data == nil {
		return fmt.Errorf("%w: no alerts", errBadMessage)
	}
	if msg.Status != statusFiring && msg.Status != statusResolved {
		return fmt.Errorf("%w: status %q", errBadMessage, msg.Status)
	}
	for i, a := range msg.Alerts {
		if err := validateAlert(a); err != nil {
			return fmt.Errorf("%w: alert %d: %w", errBadMessage, i, err)
		}
	}
	return nil
}

func validateAlert(a template.Alert) error {
	switch {
	case a.Status != statusFiring && a.Status != statusResolved:
		return fmt.Errorf("status %q", a.Status)
	case a.Labels["alertname"] == "":
		return errors.New("no alertname label")
	case a.Fingerprint == "":
		return errors.New("no fingerprint")
	case a.StartsAt.IsZero():
		return errors.New("no startsAt")
	}
	return nil
}

// authenticated reports whether the request carries valid credentials;
// when it does not, it sets the WWW-Authenticate challenge of the answer.
func (r *Remediator) authenticated(w http.ResponseWriter, req *http.Request) bool {
	if r.auth.Authenticate(req) {
		return true
	}
	if c := r.auth.Challenge(); c != "" {
		w.Header().Set("WWW-Authenticate", c)
	}
	return false
}

// authorize answers 401 unless the request carries valid credentials.
func (r *Remediator) authorize(w http.ResponseWriter, req *http.Request) bool {
	if r.authenticated(w, req) {
		return true
	}
	httpError(w, http.StatusUnauthorized, "authentication required")
	return false
}

// handleWebhook is POST /webhook. It answers 200 once every alert of the
// message and the decision about it are on disk, 503 when they could not be
// recorded (Alertmanager then retries), and 4xx for requests that are not
// authenticated, well-formed Alertmanager messages; nothing runs then.
func (r *Remediator) handleWebhook(w http.ResponseWriter, req *http.Request) {
	reject := func(result string, code int, msg string) {
		r.metrics.webhooks.WithLabelValues(result).Inc()
		r.log.Warn("webhook rejected", "result", result, "code", code, "reason", msg, "remote", req.RemoteAddr)
		httpError(w, code, msg)
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reject(webhookMethodNotAllowed, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if !r.authenticated(w, req) {
		reject(webhookUnauthorized, http.StatusUnauthorized, "authentication required")
		return
	}
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		reject(webhookUnsupportedType, http.StatusUnsupportedMediaType, "content type must be application/json")
		return
	}
	msg, err := decodeMessage(http.MaxBytesReader(w, req.Body, r.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			reject(webhookTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", r.maxBody))
			return
		}
		reject(webhookBadRequest, http.StatusBadRequest, err.Error())
		return
	}
	verdicts, err := r.intake(msg, req.RemoteAddr)
	if err != nil {
		r.metrics.webhooks.WithLabelValues(webhookJournalError).Inc()
		r.log.Error("webhook not recorded", "err", err, "group_key", msg.GroupKey)
		httpError(w, http.StatusServiceUnavailable, "could not record the alerts; retry")
		return
	}
	r.metrics.webhooks.WithLabelValues(webhookAccepted).Inc()
	r.log.Info("webhook accepted", "group_key", msg.GroupKey, "alerts", len(msg.Alerts),
		"truncated", msg.TruncatedAlerts, "reason", msg.NotificationReason, "remote", req.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"status": "accepted", "alerts": verdicts})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"status": "error", "error": msg})
}
