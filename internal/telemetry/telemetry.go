// Package telemetry sets up the OpenTelemetry exporters of a job binary
// from the standard OTEL_* environment variables. Library code never uses
// it: the engine takes the providers it is given.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Traces returns the tracer provider of a job binary, or nil when nothing
// is to be exported, and a function that flushes and stops it.
//
// Spans go over OTLP when OTEL_TRACES_EXPORTER is "otlp", or when it is
// unset and OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// is set. The protocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" or "http/protobuf" (the default);
// the exporters read the endpoint, headers, timeout and TLS settings from
// the other OTEL_EXPORTER_OTLP_* variables. OTEL_TRACES_EXPORTER=none or
// OTEL_SDK_DISABLED=true exports nothing. With stdout non-nil, spans are
// also printed there as JSON, for debugging. The resource is service.name
// = service (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override it)
// and service.version = version.
func Traces(ctx context.Context, service, version string, stdout io.Writer) (trace.TracerProvider, func(context.Context) error, error) {
	noop := func(context.Context) error { return nil }
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, noop, nil
	}
	var opts []sdktrace.TracerProviderOption
	otlp, console, err := wantTraces()
	if err != nil {
		return nil, noop, err
	}
	if console && stdout == nil {
		stdout = os.Stdout
	}
	if otlp {
		exp, err := otlpExporter(ctx)
		if err != nil {
			return nil, noop, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	if stdout != nil {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(stdout))
		if err != nil {
			return nil, noop, err
		}
		opts = append(opts, sdktrace.WithSyncer(exp))
	}
	if len(opts) == 0 {
		return nil, noop, nil
	}
	res, err := newResource(ctx, service, version)
	if err != nil {
		return nil, noop, err
	}
	tp := sdktrace.NewTracerProvider(append(opts, sdktrace.WithResource(res))...)
	return tp, tp.Shutdown, nil
}

// wantTraces reads OTEL_TRACES_EXPORTER, a comma-separated list of otlp,
// console (spans printed to stdout) or none.
func wantTraces() (otlp, console bool, err error) {
	v := strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER"))
	if v == "" {
		return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", false, nil
	}
	for e := range strings.SplitSeq(v, ",") {
		switch strings.TrimSpace(e) {
		case "otlp":
			otlp = true
		case "console":
			console = true
		case "none":
		default:
			return false, false, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want otlp, console or none", v)
		}
	}
	return otlp, console, nil
}

// grpc reports whether the OTLP exporter of signal (TRACES, METRICS)
// uses gRPC rather than HTTP/protobuf, from
// OTEL_EXPORTER_OTLP_<signal>_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL.
func grpc(signal string) (bool, error) {
	name := "OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL"
	proto := os.Getenv(name)
	if proto == "" {
		name = "OTEL_EXPORTER_OTLP_PROTOCOL"
		proto = os.Getenv(name)
	}
	switch proto {
	case "grpc":
		return true, nil
	case "", "http/protobuf":
		return false, nil
	}
	return false, fmt.Errorf("%s=%q: want grpc or http/protobuf", name, proto)
}

func otlpExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	g, err := grpc("TRACES")
	switch {
	case err != nil:
		return nil, err
	case g:
		return otlptracegrpc.New(ctx)
	}
	return otlptracehttp.New(ctx)
}

// newResource describes the job: service.name and service.version, which
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override.
func newResource(ctx context.Context, service, version string) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service), attribute.String("service.version", version)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OpenTelemetry resource: %w", err)
	}
	return res, nil
}

// Metrics returns the meter provider of a job binary, or nil when metrics
// go nowhere, an http.Handler serving them in Prometheus text format (nil
// unless prom), and a function that flushes and stops the provider.
//
// Metrics go over OTLP when OTEL_METRICS_EXPORTER is "otlp", or when it
// is unset and OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set, with the protocol of
// OTEL_EXPORTER_OTLP_METRICS_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL, every
// OTEL_METRIC_EXPORT_INTERVAL (the SDK's default 60 s).
func Metrics(ctx context.Context, service, version string, prom bool) (metric.MeterProvider, http.Handler, func(context.Context) error, error) {
	noop := func(context.Context) error { return nil }
	var (
		opts    []sdkmetric.Option
		handler http.Handler
	)
	if prom {
		reg := prometheus.NewRegistry()
		exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
		if err != nil {
			return nil, nil, noop, fmt.Errorf("prometheus exporter: %w", err)
		}
		opts = append(opts, sdkmetric.WithReader(exp))
		handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	otlp, err := wantOTLPMetrics()
	if err != nil {
		return nil, nil, noop, err
	}
	if otlp {
		exp, err := otlpMetricExporter(ctx)
		if err != nil {
			return nil, nil, noop, err
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	if len(opts) == 0 {
		return nil, nil, noop, nil
	}
	res, err := newResource(ctx, service, version)
	if err != nil {
		return nil, nil, noop, err
	}
	mp := sdkmetric.NewMeterProvider(append(opts, sdkmetric.WithResource(res))...)
	return mp, handler, mp.Shutdown, nil
}

func wantOTLPMetrics() (bool, error) {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false, nil
	}
	switch v := strings.TrimSpace(os.Getenv("OTEL_METRICS_EXPORTER")); v {
	case "otlp":
		return true, nil
	case "none", "prometheus":
		return false, nil
	case "":
		return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("OTEL_METRICS_EXPORTER=%q: want otlp, prometheus (served on --http) or none", v)
	}
}

func otlpMetricExporter(ctx context.Context) (sdkmetric.Exporter, error) {
	g, err := grpc("METRICS")
	switch {
	case err != nil:
		return nil, err
	case g:
		return otlpmetricgrpc.New(ctx)
	}
	return otlpmetrichttp.New(ctx)
}
