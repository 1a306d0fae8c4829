# The thv operator image (also carries `thv proxy`). Build: docker build -t thv .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY bus ./bus
COPY crds ./crds
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
USER 1000:1000
ENTRYPOINT ["thv"]
CMD ["operator", "run"]
