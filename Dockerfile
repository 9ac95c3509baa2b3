# A job binary in a small image. Build another job with
#   docker build --build-arg JOB=sequence -t weir-sequence .
FROM golang:1.26-bookworm AS build
ARG JOB=wordcount
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/job ./jobs/${JOB}

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/job /job
# Keyed state lives here; mount a volume to keep local recovery across
# container restarts.
WORKDIR /home/nonroot
EXPOSE 8080
ENTRYPOINT ["/job"]
