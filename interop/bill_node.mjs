// Fetches a day's trade bill from jianlian's sandbox with the official Node
// SDK (alipay-sdk 4.14.0, validateSign: true): asks
// alipay.data.dataservice.bill.downloadurl.query for the download URL, then
// downloads the zip from it into cfg.out; also asks for today's bill and for
// a day without one, which Alipay refuses. Prints one JSON object.
// Usage: node bill_node.mjs '<json config>' (written by the Rust test).
import { writeFile } from 'node:fs/promises';
import { AlipaySdk } from 'alipay-sdk';

const cfg = JSON.parse(process.argv[2]);
const sdk = new AlipaySdk({
  appId: cfg.app_id,
  privateKey: cfg.private_key,
  keyType: 'PKCS8',
  alipayPublicKey: cfg.alipay_public_key,
  gateway: cfg.gateway,
  signType: 'RSA2',
  camelcase: false,
  timeout: 10000,
});

const query = (date) =>
  sdk.exec(
    'alipay.data.dataservice.bill.downloadurl.query',
    { bizContent: { bill_type: 'trade', bill_date: date } },
    { validateSign: true },
  );

const out = {};
out.query = await query(cfg.bill_date);
const response = await fetch(out.query.bill_download_url);
out.status = response.status;
out.content_type = response.headers.get('content-type');
const bytes = Buffer.from(await response.arrayBuffer());
await writeFile(cfg.out, bytes);
out.size = bytes.length;
out.today = await query(cfg.today);
out.missing = await query(cfg.missing);
console.log(JSON.stringify(out));
