-- A channel queries its trades by Alipay's trade_no too (alipay.trade.query
-- with trade_no). Without this index that lookup read every trade of the
-- channel. Only trades Alipay has numbered are in it; both columns of the
-- lookup are, so it is chosen without statistics.
CREATE INDEX trades_trade_no ON trades (trade_no, channel_app_id) WHERE trade_no IS NOT NULL;
