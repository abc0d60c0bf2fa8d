FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install .

COPY workflows ./workflows
COPY templates ./templates

RUN useradd --create-home remarket
USER remarket

EXPOSE 8000
CMD ["remarket", "api", "--host", "0.0.0.0", "--port", "8000"]
