// wx.request as a promise: JSON in and out, a deadline, and a callback when the network turns out slow.
const config = require('../config');

class Failure extends Error {
  // kind: "network" (no answer), "timeout" (no answer in time) or "http" (a 4xx/5xx answer).
  constructor(kind, fields = {}) {
    super(fields.code || kind);
    this.kind = kind;
    this.status = fields.status || 0;
    this.code = fields.code || kind;
    this.serverMessage = fields.serverMessage || '';
    this.retryAfter = fields.retryAfter || 0;
  }
}

function header(headers, name) {
  const wanted = name.toLowerCase();
  const found = Object.keys(headers || {}).find((key) => key.toLowerCase() === wanted);
  return found ? headers[found] : undefined;
}

function send(method, path, {data, headers = {}, onSlow} = {}) {
  return new Promise((resolve, reject) => {
    const slowTimer = onSlow ? setTimeout(onSlow, config.slowAfterMs) : null;
    const done = () => slowTimer && clearTimeout(slowTimer);
    wx.request({
      url: config.baseUrl + path,
      method,
      data,
      header: Object.assign({'Content-Type': 'application/json'}, headers),
      timeout: config.timeoutMs,
      dataType: 'json',
      success(res) {
        done();
        if (res.statusCode >= 200 && res.statusCode < 300) {
          resolve({status: res.statusCode, data: res.data, headers: res.header || {}});
          return;
        }
        const error = (res.data && res.data.error) || {};
        reject(new Failure('http', {
          status: res.statusCode,
          code: error.code || `http_${res.statusCode}`,
          serverMessage: typeof error.message === 'string' ? error.message : '',
          retryAfter: Number(header(res.header, 'Retry-After')) || 0,
        }));
      },
      fail(res) {
        done();
        const timedOut = /timeout/i.test((res && res.errMsg) || '');
        reject(new Failure(timedOut ? 'timeout' : 'network'));
      },
    });
  });
}

module.exports = {Failure, send};
