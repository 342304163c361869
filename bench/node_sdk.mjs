// The official Node SDK (npm alipay-sdk 4.14.0 in interop/node_modules) on the
// five protocol operations that crates/alipay/benches/protocol.rs measures,
// with the same keys and payloads (the worked examples of protocol.md §2.4, §5,
// §6.3). Each operation is checked once before it is timed.
//
//   node bench/node_sdk.mjs SECONDS
//   → one line per operation: "<name> <median batch> <best batch> <overall>"
//     in operations per CPU-second
//
// Where the SDK has a function for the job it is called as an integrator calls
// it; where it has none (it is a client: it never verifies requests or signs
// responses) the job is done with the SDK's own primitives, as noted per case.

import { createSign, createVerify } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sdkEntry = path.join(root, 'interop/node_modules/alipay-sdk/dist/esm/index.js');
if (!existsSync(sdkEntry)) {
  console.error('bench/node_sdk.mjs: interop/node_modules/alipay-sdk is missing; run scripts/setup-interop');
  process.exit(2);
}
const { AlipaySdk } = await import(sdkEntry);
// The SDK's own dependency, which exec() applies to every verified response.
const camelcaseKeys = createRequire(sdkEntry)('camelcase-keys');

const seconds = Number(process.argv[2] ?? '3');
const examples = path.join(root, 'crates/alipay/tests/conformance/worked-examples');
const read = rel => readFileSync(path.join(examples, rel), 'utf8');

const request = JSON.parse(read('canonical_request.json'));
const responseHttp = read('canonical_response_http.txt');
const responseBody = responseHttp.slice(responseHttp.search(/\r?\n\r?\n/)).trim();
const notifyBody = read('notify_body.txt').trim();
const responseKey = 'alipay_trade_pay_response';
const node = responseBody.slice(
  responseBody.indexOf(`"${responseKey}":`) + responseKey.length + 3,
  responseBody.lastIndexOf(',"sign"'),
);

// The client as an integrator configures it: app private key (PKCS#1), Alipay public key.
const client = new AlipaySdk({
  appId: '2021000000000001',
  privateKey: read('keys/app_pkcs1.pem'),
  alipayPublicKey: read('keys/alipay_pub.pem'),
  signType: 'RSA2',
});
// For checking requests, the "Alipay public key" slot holds the app's public key.
const requestChecker = new AlipaySdk({
  appId: '2021000000000001',
  privateKey: read('keys/app_pkcs1.pem'),
  alipayPublicKey: read('keys/app_pub.pem'),
  signType: 'RSA2',
});
// Playing Alipay: the SDK formats the Alipay private key the way it formats any key.
const alipaySigner = new AlipaySdk({
  appId: '2021000000000001',
  privateKey: read('keys/alipay_pkcs1.pem'),
  signType: 'RSA2',
});

const operations = {
  // sdkExecute: the SDK's request-building path (sign() + encoding), minus HTTP.
  build_and_sign_request: () => client.sdkExecute('alipay.trade.pay', {
    notifyUrl: 'https://merchant.example.com/alipay/notify',
    bizContent: {
      outTradeNo: 'T20240513000001',
      scene: 'bar_code',
      authCode: '28763443825664394',
      subject: '测试商品 A&B=C/ok',
      totalAmount: '88.88',
    },
  }),
  // No SDK function: decode the form, then the SDK's notifyRSACheck (sorted
  // k=v of every parameter but sign, verified with the configured key).
  verify_request: () => {
    const query = request.raw_path.slice(request.raw_path.indexOf('?') + 1);
    const params = Object.fromEntries(new URLSearchParams(`${query}&${request.raw_body}`));
    const sign = params.sign;
    delete params.sign;
    return requestChecker.notifyRSACheck(params, sign, params.sign_type, true);
  },
  // No SDK function: the SDK's signing primitive (createSign with its formatted key).
  sign_response: () => {
    const sign = createSign('RSA-SHA256').update(node, 'utf8')
      .sign(alipaySigner.config.privateKey, 'base64');
    return `{"${responseKey}":${node},"sign":"${sign}"}`;
  },
  // exec()'s response path with validateSign: parse, checkResponseSign, camel-case.
  verify_response: () => {
    const parsed = JSON.parse(responseBody);
    const data = parsed[responseKey] ?? parsed.error_response;
    client.checkResponseSign(responseBody, responseKey, parsed.sign);
    return camelcaseKeys(data, { deep: true });
  },
  // checkNotifySignV2 on the form as the vectors decode it.
  verify_notification: () => client.checkNotifySignV2(Object.fromEntries(new URLSearchParams(notifyBody))),
};

// Check every operation once: a benchmark must never time a failure path.
function check() {
  const built = new URLSearchParams(operations.build_and_sign_request());
  const sign = built.get('sign');
  built.delete('sign');
  const content = [...built.keys()].sort().map(k => `${k}=${built.get(k)}`).join('&');
  const ok = createVerify('RSA-SHA256').update(content, 'utf8')
    .verify(requestChecker.config.alipayPublicKey, sign, 'base64');
  if (!ok) throw new Error('build_and_sign_request: the signature does not verify');
  if (!operations.verify_request()) throw new Error('verify_request: the captured request does not verify');
  if (operations.sign_response() !== responseBody) throw new Error('sign_response: differs from the captured response');
  if (operations.verify_response().tradeNo !== '2024051322001446881000041395') throw new Error('verify_response: wrong node');
  let tamperedRejected = false;
  try {
    client.checkResponseSign(responseBody.replace('88.88', '88.89'), responseKey, JSON.parse(responseBody).sign);
  } catch {
    tamperedRejected = true;
  }
  if (!tamperedRejected) throw new Error('verify_response: a tampered body verified');
  if (operations.verify_notification() !== true) throw new Error('verify_notification: the captured notification does not verify');
}

let sink;
// CPU time of this process in seconds (all its threads, on the one CPU the
// script pins it to): other work on a shared machine does not count.
const cpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};
// Warms the JIT up for a CPU-second (as criterion warms up for one), then runs
// BATCHES batches of equal CPU time. Reports the median batch's rate (the figure compared; it keeps the
// garbage collector's usual share), the best batch's and the overall rate,
// in ops per CPU-second.
const BATCHES = 100;
function measure(op) {
  const warmEnd = cpuSeconds() + 1;
  while (cpuSeconds() < warmEnd) sink = op();
  const rates = [];
  let calls = 0;
  const start = cpuSeconds();
  for (let batch = 0; batch < BATCHES; batch++) {
    const batchStart = cpuSeconds();
    const batchEnd = batchStart + seconds / BATCHES;
    let batchCalls = 0;
    let now;
    do {
      sink = op();
      batchCalls += 1;
      now = cpuSeconds();
    } while (now < batchEnd);
    calls += batchCalls;
    rates.push(batchCalls / (now - batchStart));
  }
  const overall = calls / (cpuSeconds() - start);
  rates.sort((a, b) => a - b);
  const median = (rates[(BATCHES - 1) >> 1] + rates[BATCHES >> 1]) / 2;
  return [median, rates[BATCHES - 1], overall];
}

check();
for (const [name, op] of Object.entries(operations)) {
  const [median, best, overall] = measure(op);
  console.log(`${name} ${median.toFixed(1)} ${best.toFixed(1)} ${overall.toFixed(1)}`);
}
if (sink === undefined) console.error('(unreachable: keeps results alive)');
