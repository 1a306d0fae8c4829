# The thv image: the operator, `thv proxy` and every console script of the project's wheel.
# Build: docker build -t thv .
# The local cluster builds the same image without Docker or a registry
# (`python -m devcluster.images build thv`: Debian bookworm's Python 3.11, the same wheel) and takes
# its runtime configuration -- ENV, USER, WORKDIR, ENTRYPOINT and CMD of the final stage below --
# from this file: keep them literal, ENV as KEY=VALUE, ENTRYPOINT/CMD in JSON form.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY bus ./bus
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
ENV PYTHONUNBUFFERED=1
USER 1000:1000
ENTRYPOINT ["thv"]
CMD ["operator", "run"]
