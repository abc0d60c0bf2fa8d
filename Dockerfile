FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Dependencies first, from pyproject.toml alone: a change to the source (or the README)
# reuses this layer instead of reinstalling every package.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the package itself, without resolving its dependencies again.
COPY README.md ./
COPY src ./src
RUN pip install --no-deps .

COPY workflows ./workflows
COPY templates ./templates
COPY segments ./segments

RUN useradd --create-home remarket
USER remarket

# One image, three processes (api, worker, scheduler): each service in docker-compose.yml
# has the healthcheck that fits its process, so there is no HEALTHCHECK here.
# 8000: the HTTP API; 9100: Prometheus metrics when REMARKET_METRICS_PORT=9100.
EXPOSE 8000 9100
CMD ["remarket", "api", "--host", "0.0.0.0", "--port", "8000"]
