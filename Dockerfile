# syntax=docker/dockerfile:1
# voxta-discord: multi-stage build. The runtime image has production dependencies only,
# no compiler and no ffmpeg, and runs as a non-root user.

ARG NODE_VERSION=24

# --- build: all dependencies, compile TypeScript to dist/ ----------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies and the compiled output only ------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
    DATA_DIR=/data \
    HEALTH_PORT=8080 \
    HEALTH_HOST=0.0.0.0
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# bin/run.mjs lets `npm start` and `npm run doctor` run the compiled code here (no src/, no tsx);
# bin/check-node.cjs, its first import, checks the Node version against package.json "engines".
COPY bin ./bin
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.HEALTH_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/src/index.js"]
