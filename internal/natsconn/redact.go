package natsconn

import "net/url"

// redactURL hides the password of every URL in a comma-separated list.
func redactURL(s string) string {
	out := ""
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != ',' {
			continue
		}
		part := s[start:i]
		if u, err := url.Parse(part); err == nil && u.User != nil {
			part = u.Redacted()
		}
		if out != "" {
			out += ","
		}
		out += part
		start = i + 1
	}
	return out
}
