package remediator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
)

// webhookVersion is the only Alertmanager webhook payload version accepted.
const webhookVersion = "4"

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
	if msg.Version != webhookVersion {
		return fmt.Errorf("%w: version %q, want %q", errBadMessage, msg.Version, webhookVersion)
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
